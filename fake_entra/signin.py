"""The sign-in pages of ``/{tenant}/oauth2/v2.0/authorize``: an account's sign-in name, then, if
the app lacks some of the delegated permissions it asks for, Microsoft's "Permissions requested"
page (an administrator may consent for the whole organization). Both forms POST back to the
same path with the request's parameters; the fake then redirects to ``redirect_uri`` as Entra ID
does: ``code=…&state=…&session_state=…`` or ``error=…&error_description=…&state=…``.
"""

from html import escape

from .consent import page, with_query
from .protocol import AADSTS

# The authorization request's parameters a form carries from step to step.
CARRIED = ("client_id", "response_type", "redirect_uri", "scope", "state", "nonce",
           "code_challenge", "code_challenge_method", "response_mode", "prompt", "login_hint",
           "domain_hint", "client_info")
# What Microsoft's consent page says for each delegated permission.
SCOPE_TEXTS = {
    "User.Read": "Sign you in and read your profile",
    "User.ReadBasic.All": "Read all users' basic profiles",
    "User.Read.All": "Read all users' full profiles",
    "Domain.Read.All": "Read domains",
    "GroupMember.Read.All": "Read group memberships",
    "Group.Read.All": "Read all groups",
    "Directory.Read.All": "Read directory data",
    "DelegatedAdminRelationship.Read.All": "Read Delegated Admin relationships with customers",
    "DelegatedAdminRelationship.ReadWrite.All": "Manage Delegated Admin relationships with customers",
}


def _hidden(params, extra=()):
    values = [(name, params.get(name)) for name in CARRIED] + list(extra)
    return "".join(f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
                   for name, value in values if value is not None)


def sign_in_page(action, app_name, params, error=None):
    """"Sign in": the account's sign-in name (the fake asks no password)."""
    login = params.get("login") or params.get("login_hint") or ""
    body = (
        "<h1>Sign in</h1>"
        f'<p class="muted">to continue to <span class="app" id="app-name">{escape(app_name)}</span></p>'
        + (f'<p class="error" id="error">{escape(error)}</p>' if error else "")
        + f'<form method="post" action="{escape(action)}">{_hidden(params)}'
        '<label for="login">Email, phone, or Skype</label>'
        f'<input id="login" name="login" type="email" value="{escape(login)}" '
        'style="width:100%;padding:6px;margin:12px 0 20px" autofocus>'
        '<div class="buttons"><button id="next" name="step" value="sign_in">Next</button></div>'
        "</form>"
    )
    return page("Sign in to your account", body)


def permissions_page(action, app_name, params, login, scopes, admin):
    """"Permissions requested" for delegated permissions the app has not been granted."""
    items = "".join(f"<li>{escape(SCOPE_TEXTS.get(scope, scope))}</li>" for scope in scopes)
    organization = (
        '<p><label><input type="checkbox" id="organization" name="consent_org" value="1" checked> '
        "Consent on behalf of your organization</label></p>" if admin else "")
    body = (
        "<h1>Permissions requested</h1>"
        f'<p><span class="app" id="app-name">{escape(app_name)}</span><br>'
        '<span class="muted">unverified</span></p>'
        f'<p class="muted">Signed in as <span id="account">{escape(login)}</span></p>'
        f"<p>This app would like to:</p><ul>{items}</ul>"
        f'<form method="post" action="{escape(action)}">'
        f'{_hidden(params, [("login", login), ("step", "consent")])}{organization}'
        '<div class="buttons">'
        '<button id="cancel" name="decision" value="cancel">Cancel</button>'
        '<button id="accept" name="decision" value="accept">Accept</button>'
        "</div></form>"
    )
    return page("Permissions requested", body)


def code_redirect(redirect_uri, code, state, session_state):
    return with_query(redirect_uri, [("code", code), ("state", state), ("session_state", session_state)])


def error_redirect(redirect_uri, error, code, state, **fmt):
    """Entra's error redirect: ``error``, ``error_description`` (AADSTS text), ``state``."""
    description = f"AADSTS{code}: {AADSTS[code].format(**fmt)}" if code else error
    return with_query(redirect_uri, [("error", error), ("error_description", description),
                                     ("state", state)])
