"""Wire formats of Entra ID (login) and Microsoft Graph, as documented by Microsoft.

Pure functions, no state: error bodies, the OpenID configuration document, the user projection
of ``$select`` and the opaque ``$skiptoken``.
"""

import base64
import binascii
import json
import re
import secrets
import time
import uuid

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_METADATA = "https://graph.microsoft.com/v1.0/$metadata"

# Returned when a request has no $select (Microsoft's documented default set).
DEFAULT_USER_PROPERTIES = (
    "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
    "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id",
)
COLLECTION_PROPERTIES = frozenset({
    "assignedLicenses", "assignedPlans", "businessPhones", "identities", "imAddresses",
    "interests", "licenseAssignmentStates", "otherMails", "pastProjects", "provisionedPlans",
    "proxyAddresses", "responsibilities", "schools", "skills",
})
USER_PROPERTIES = COLLECTION_PROPERTIES | frozenset(DEFAULT_USER_PROPERTIES) | frozenset({
    "aboutMe", "accountEnabled", "ageGroup", "birthday", "city", "companyName",
    "consentProvidedForMinor", "country", "createdDateTime", "creationType", "deletedDateTime",
    "department", "employeeHireDate", "employeeId", "employeeOrgData", "employeeType",
    "externalUserState", "externalUserStateChangeDateTime", "faxNumber", "hireDate",
    "isResourceAccount", "lastPasswordChangeDateTime", "legalAgeGroupClassification",
    "mailNickname", "mySite", "onPremisesDistinguishedName", "onPremisesDomainName",
    "onPremisesExtensionAttributes", "onPremisesImmutableId", "onPremisesLastSyncDateTime",
    "onPremisesSamAccountName", "onPremisesSecurityIdentifier", "onPremisesSyncEnabled",
    "onPremisesUserPrincipalName", "passwordPolicies", "postalCode", "preferredDataLocation",
    "preferredName", "securityIdentifier", "showInAddressList",
    "signInSessionsValidFromDateTime", "state", "streetAddress", "usageLocation", "userType",
})
_CANONICAL = {name.lower(): name for name in USER_PROPERTIES}

# AADSTS texts (shortened from the real ones, but with the same code, error and opening words).
AADSTS = {
    90002: ("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
            "are signing in to the correct cloud. Check with your subscription administrator, "
            "this may happen if there are no active subscriptions for the tenant."),
    700016: ("Application with identifier '{client_id}' was not found in the directory "
             "'{tenant}'. This can happen if the application has not been installed by the "
             "administrator of the tenant or consented to by any user in the tenant. You may "
             "have sent your authentication request to the wrong tenant."),
    7000215: ("Invalid client secret provided. Ensure the secret being sent in the request is "
              "the client secret value, not the client secret ID, for a secret added to app "
              "'{client_id}'."),
    7000222: ("The provided client secret keys for app '{client_id}' are expired. Visit the "
              "Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, "
              "or consider using certificate credentials for added security: "
              "https://aka.ms/certCreds."),
    7000218: ("The request body must contain the following parameter: 'client_assertion' or "
              "'client_secret'."),
    900144: "The request body must contain the following parameter: '{parameter}'.",
    70003: "The app requested an unsupported grant type '{grant_type}'.",
    1002012: ("The provided value for scope {scope} is not valid. Client credential flows must "
              "have a scope value with /.default suffixed to the resource identifier "
              "(application ID URI)."),
    500011: ("The resource principal named {resource} was not found in the tenant named "
             "{tenant}. This can happen if the application has not been installed by the "
             "administrator of the tenant or consented to by any user in the tenant."),
    900023: ("Specified tenant identifier '{tenant}' is neither a valid DNS name, nor a valid "
             "external domain."),
    65004: "User declined to consent to access the app.",
    50011: "The redirect URI '{redirect_uri}' specified in the request is not valid.",
    90033: "A transient error has occurred. Please try again.",
    # Certificate credentials: the client assertion refused (see fake_entra.assertion).
    700027: "Client assertion contains an invalid signature. [Reason - {reason}]",
    700024: "{reason}",
    700021: "{reason}",
    700023: "{reason}",
    50048: "{reason}",
    50027: "{reason}",
    7000112: "Application '{client_id}'({app_name}) is disabled.",
    # Users signing in and their refresh tokens (delegated access, GDAP).
    9002313: "Invalid request. Request is malformed or invalid.",
    54005: "OAuth2 Authorization code was already redeemed, please retry with a new valid code.",
    70008: ("The provided authorization code or refresh token has expired due to inactivity. "
            "Send a new interactive authorization request for this user and resource."),
    50148: ("The code_verifier does not match the code_challenge or the redirect URI "
            "'{redirect_uri}' does not match the one of the authorization request."),
    501481: "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
    700082: ("The refresh token has expired due to inactivity. The token was issued more than "
             "90 days ago."),
    50173: ("The provided grant has expired due to it being revoked, a fresh auth token is needed. "
            "The user might have changed or reset their password."),
    50020: ("User account '{user}' from identity provider '{idp}' does not exist in tenant "
            "'{tenant}' and cannot access the application '{client_id}'({app_name}) in that tenant."),
    90099: ("The application '{client_id}' ({app_name}) has not been authorized in the tenant "
            "'{tenant}'. Applications must be authorized to access the customer tenant before "
            "partner delegated administrators can use them. Provide pre-consent or execute the "
            "appropriate Partner Center API to authorize the application."),
    65001: ("The user or administrator has not consented to use the application with ID "
            "'{client_id}' named '{app_name}'. Send an interactive authorization request for this "
            "user and resource."),
    50034: "The user account {login} does not exist in the directory.",
    90094: ("{app_name} needs permission to access resources in your organization that only an "
            "admin can grant. Please ask an admin to grant permission to this app before you can "
            "use it."),
    70011: "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid.",
}


def aad_error(error, code, **fmt):
    """An Entra ID (login.microsoftonline.com) error body."""
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    timestamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    text = AADSTS[code].format(**fmt)
    return {
        "error": error,
        "error_description": (f"AADSTS{code}: {text} Trace ID: {trace_id} "
                              f"Correlation ID: {correlation_id} Timestamp: {timestamp}"),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


def graph_error(code, message, request_id, client_request_id):
    """A Microsoft Graph error body."""
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }
    }


def openid_configuration(base_url, tenant):
    """The v2.0 discovery document; ``tenant`` is a GUID, ``organizations`` or ``common``."""
    issuer_tenant = tenant if is_guid(tenant) else "{tenantid}"
    return {
        "token_endpoint": f"{base_url}/{tenant}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{base_url}/{tenant}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base_url}/{issuer_tenant}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base_url}/oidc/userinfo",
        "authorization_endpoint": f"{base_url}/{tenant}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base_url}/{tenant}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base_url}/{tenant}/oauth2/v2.0/logout",
        "claims_supported": [
            "sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
            "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr",
            "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": f"{base_url}/{tenant}/kerberos",
        "tenant_region_scope": "EU" if is_guid(tenant) else None,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": base_url.split("://", 1)[1],
        "rbac_url": "https://pas.windows.net",
    }


def is_guid(value):
    try:
        uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return False
    return len(value) == 36


def parse_select(raw):
    """``$select`` → canonical property names (``id`` first); raises ValueError on unknown ones."""
    if raw is None:
        return None
    names = ["id"]
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        canonical = _CANONICAL.get(part.lower())
        if canonical is None:
            raise ValueError(
                "Parsing OData Select and Expand failed: Could not find a property named "
                f"'{part}' on type 'microsoft.graph.user'.")
        if canonical not in names:
            names.append(canonical)
    return names


def project_user(user, properties):
    """Graph's projection: selected properties only, missing ones as null (collections: [])."""
    return {
        name: user.get(name, [] if name in COLLECTION_PROPERTIES else None)
        if name != "id" else user["id"]
        for name in properties
    }


def users_context(selected):
    if selected is None:
        return f"{GRAPH_METADATA}#users"
    return f"{GRAPH_METADATA}#users({','.join(selected)})"


def encode_skiptoken(last_id):
    """Opaque cursor: the id of the last user already served ('' = start of the list)."""
    raw = f"fe1|{last_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_skiptoken(token):
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("Invalid skip token.") from exc
    prefix, _, last_id = raw.partition("|")
    if prefix != "fe1":
        raise ValueError("Invalid skip token.")
    return last_id


def encode_access_token(claims):
    """A JWT-shaped access token. Clients must treat Graph tokens as opaque; this one is, in
    addition, not signed (the fake checks its tokens by looking them up)."""
    def part(data):
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    signature = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return f"{part({'typ': 'JWT', 'alg': 'RS256', 'kid': 'fake-entra'})}.{part(claims)}.{signature}"


_TOKEN = re.compile(r"[A-Z]*[a-z]+|[A-Z]+|\d+|[^\W\d_a-zA-Z]+|[^\w\s]")


def search_tokens(text):
    """Graph's tokenization for ``$search`` on directory objects, as documented: words split at
    spaces, at a change from lower to upper case, between letters and numbers, and at symbols;
    words separated only by symbols also count joined ("hello.world" → hello, ., world,
    helloworld); matched without regard to case."""
    tokens = []
    for word in str(text or "").split():
        parts = _TOKEN.findall(word)
        tokens += [part.lower() for part in parts]
        joined = "".join(part for part in parts if part.isalnum()).lower()
        if joined and joined not in tokens:
            tokens.append(joined)
    return tokens


def parse_search(raw):
    """``$search="displayName:text"`` → the text (with ``\\"`` and ``\\\\`` unescaped);
    raises ValueError on anything else (the fake knows only this one clause)."""
    match = re.fullmatch(r'\s*"displayName:((?:[^"\\]|\\.)*)"\s*', raw or "")
    if not match:
        raise ValueError("Syntax error: the fake only supports $search=\"displayName:<text>\".")
    return re.sub(r"\\(.)", r"\1", match[1])


def search_matches(search_text, display_name):
    """Whether every token of the search text starts a token of the display name."""
    wanted = search_tokens(search_text)
    have = search_tokens(display_name)
    return bool(wanted) and all(any(token.startswith(w) for token in have) for w in wanted)


# Application permissions (a token's `roles`) of which each Graph call needs one, least
# privileged first, as the API reference pages list them.
_DIRECTORY_ROLES = ("Directory.Read.All", "Directory.ReadWrite.All")
USERS_ROLES = ("User.Read.All", "User.ReadWrite.All", *_DIRECTORY_ROLES)
GROUPS_ROLES = ("GroupMember.Read.All", "GroupMember.ReadWrite.All", "Group.Read.All",
                "Group.ReadWrite.All", *_DIRECTORY_ROLES)
DOMAINS_ROLES = ("Domain.Read.All", "Domain.ReadWrite.All", *_DIRECTORY_ROLES)


def advanced_query_error(feature):
    """Microsoft's 400 when a query needs the advanced query parameters and lacks them."""
    return (f"{feature} is not supported because the required parameters might be missing. "
            "Try adding $count=true query parameter and ConsistencyLevel:eventual header. "
            "Refer to https://aka.ms/graph-docs/advanced-queries for more information")


SEARCH_NEEDS_EVENTUAL = ("Request with $search query parameter only works through MSGraph with "
                         "a special request header: 'ConsistencyLevel: eventual'")


def encode_state_token(state):
    """An opaque delta state token ($skiptoken / $deltatoken) carrying ``state`` (a dict)."""
    raw = b"fd1|" + json.dumps(state, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_state_token(token):
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        prefix, _, payload = raw.partition(b"|")
        state = json.loads(payload) if prefix == b"fd1" else None
        return dict(state)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError("Invalid state token.") from exc


def delta_properties(user, selected, only=None):
    """A user as a delta response carries it: the selected properties that have ever been
    set (a property set to null included, one never set left out), restricted to ``only``
    (Prefer: return=minimal: the changed ones), and its id."""
    names = selected or DEFAULT_USER_PROPERTIES
    return {
        **{name: user[name] for name in names
           if name != "id" and name in user and (only is None or name in only)},
        "id": user["id"],
    }


RESYNC_REQUIRED = "The delta token is no longer valid, and the app must reset the sync state."
SYNC_STATE_NOT_FOUND = ("The sync state generation is not found. The delta token is expired and "
                        "the app must reset the sync state.")
