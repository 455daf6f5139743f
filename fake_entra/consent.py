"""The admin-consent page (``/{tenant}/v2.0/adminconsent``) and its redirects.

Looks like a tiny Microsoft sign-in page so that demos and browser tours read naturally. The form
POSTs back to the same path; the fake then redirects to ``redirect_uri`` exactly as Entra ID does:
``admin_consent=True&tenant=…&scope=…&state=…`` or ``error=access_denied&error_description=…``.
"""

from html import escape
from urllib.parse import urlencode, urlsplit, urlunsplit

from .protocol import AADSTS

_STYLE = """
body{margin:0;background:#f2f2f2;font-family:"Segoe UI","Helvetica Neue",Arial,sans-serif;
 color:#1b1b1b}
.card{max-width:440px;margin:60px auto;background:#fff;padding:44px;
 box-shadow:0 2px 6px rgba(0,0,0,.2)}
.logo{display:grid;grid-template-columns:10px 10px;gap:2px;margin-bottom:8px}
.logo span{width:10px;height:10px}
h1{font-size:24px;font-weight:600;margin:16px 0 8px}
.app{font-weight:600}.muted{color:#616161;font-size:13px}
ul{padding-left:20px}select{width:100%;padding:6px;margin:12px 0 20px}
.buttons{text-align:right}
button{min-width:108px;padding:6px 12px;margin-left:8px;border:none;font-size:15px;
 cursor:pointer}
#accept,#next{background:#0067b8;color:#fff}#cancel{background:#ccc}
.error{color:#e81123}
"""
_LOGO = "".join(f'<span style="background:{c}"></span>'
                for c in ("#f25022", "#7fba00", "#00a4ef", "#ffb900"))


def page(title, body):
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><div class=\"card\"><div class=\"logo\">{_LOGO}</div>"
        f"<div class=\"muted\">Microsoft (fake_entra)</div>{body}</div></body></html>\n"
    )


def consent_page(action, app_name, params, tenants, selected_tenant):
    """The "Permissions requested" form; ``params`` holds client_id, scope, redirect_uri, state."""
    hidden = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(params.get(name) or "")}">'
        for name in ("client_id", "scope", "redirect_uri", "state")
    )
    options = "".join(
        f'<option value="{escape(tid)}"{" selected" if tid == selected_tenant else ""}>'
        f"{escape(name)} ({escape(tid)})</option>"
        for tid, name in tenants
    )
    body = (
        "<h1>Permissions requested</h1>"
        f'<p><span class="app" id="app-name">{escape(app_name)}</span><br>'
        '<span class="muted">unverified</span></p>'
        "<p>This app would like to:</p>"
        "<ul><li>Read all users' full profiles</li></ul>"
        "<p class=\"muted\">If you accept, this app will get access to the specified resources "
        "for all users in your organization. No one else will be prompted to review these "
        "permissions.</p>"
        f'<form method="post" action="{escape(action)}">{hidden}'
        '<label for="tenant">Organization</label>'
        f'<select id="tenant" name="tenant">{options}</select>'
        '<div class="buttons">'
        '<button id="cancel" name="decision" value="cancel">Cancel</button>'
        '<button id="accept" name="decision" value="accept">Accept</button>'
        "</div></form>"
    )
    return page("Permissions requested", body)


def error_page(code, **fmt):
    text = f"AADSTS{code}: {AADSTS[code].format(**fmt)}"
    body = ("<h1>Sorry, but we're having trouble signing you in.</h1>"
            f'<p class="error" id="error">{escape(text)}</p>')
    return page("Sign in to your account", body)


def with_query(url, params):
    """Append ``params`` to ``url``, keeping any query string it already has."""
    parts = urlsplit(url)
    extra = urlencode([(k, v) for k, v in params if v is not None])
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query, fragment=""))


def accepted_redirect(redirect_uri, tenant_id, scope, state):
    return with_query(redirect_uri, [
        ("admin_consent", "True"), ("tenant", tenant_id), ("scope", scope or None),
        ("state", state),
    ])


def declined_redirect(redirect_uri, state):
    return with_query(redirect_uri, [
        ("error", "access_denied"),
        ("error_description", f"AADSTS65004: {AADSTS[65004]}"),
        ("state", state),
    ])


def valid_redirect_uri(uri):
    parts = urlsplit(uri or "")
    return parts.scheme in ("http", "https") and bool(parts.netloc)
