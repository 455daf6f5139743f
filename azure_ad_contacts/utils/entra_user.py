"""What an Entra user record says, made safe to store (pure Python, no I/O, no Odoo): text
cleaned and capped, the one email address of a user, the contact's name, the optional
mappings' values."""

import re

MAX_TEXT = 256  # Entra caps names and titles at 256 or less; longer values are hostile
MAX_EMAIL = 254  # the longest address SMTP can carry
MAX_OBJECT_ID = 128  # Entra object ids are 36-character GUIDs
# C0/C1 controls (whitespace ones are handled by str.split) and lone surrogates, which
# PostgreSQL would refuse.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# One mailbox address and nothing else: a local part without blanks, quotes, brackets, commas
# or semicolons (what separates or decorates addresses), "@", and a host name with a dot.
# A value such as "a@x.com, b@evil.com" would make Odoo mail both.
_ONE_ADDRESS = re.compile(
    r"[^\s@\"<>()\[\],;:\\]+"  # the local part
    r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+(?:[^\W\d_]{1,63}|xn--[\w-]{2,59})"  # the host name
)


def clean_text(value, limit=MAX_TEXT):
    """Entra text made safe to store: '' unless a string, no controls, blanks collapsed."""
    if not isinstance(value, str):
        return ""
    if value.isprintable() and len(value) <= limit and "  " not in value and value.strip(" ") == value:
        return value  # already clean, as nearly all are: the only blank a printable string has is " "
    return " ".join(_UNPRINTABLE.sub("", value[: limit * 4]).split())[:limit]


def normalize_email(value):
    """The matching key of an address: trimmed, lower-cased; None when empty."""
    if not isinstance(value, str):
        return None
    return value.strip().lower() or None


def entra_email(user):
    """`mail`, else the primary (upper-case `SMTP:`) proxy address, as written; None if neither."""
    email = clean_text(user.get("mail"), MAX_EMAIL + 1)
    if email and len(email) <= MAX_EMAIL:
        return email
    proxies = user.get("proxyAddresses")  # read only when needed: most users have a mail
    for proxy in proxies if isinstance(proxies, list) else ():
        if isinstance(proxy, str) and proxy.startswith("SMTP:"):
            email = clean_text(proxy[5:], MAX_EMAIL + 1)
            if email and len(email) <= MAX_EMAIL:
                return email
    return None


def is_one_address(email):
    """Whether `email` is exactly one valid mailbox address."""
    return bool(_ONE_ADDRESS.fullmatch(email))


def contact_name(user):
    """The contact's name: given name + surname, else the display name, else the email."""
    full = " ".join(filter(None, (clean_text(user.get("givenName")),
                                  clean_text(user.get("surname")))))
    return full[:MAX_TEXT] or clean_text(user.get("displayName")) or entra_email(user) or ""


def _first_business_phone(user):
    phones = user.get("businessPhones")
    if isinstance(phones, list):
        for phone in phones:
            phone = clean_text(phone)
            if phone:
                return phone
    return ""


def _text_property(name):
    return lambda user: clean_text(user.get(name))


# Optional mappings beyond name, job title and mobile, each switched on per integration:
# contact field -> (the Graph property to $select, how to read it from a user).
EXTRA_MAPPINGS = {
    "phone": ("businessPhones", _first_business_phone),
    "azure_ad_department": ("department", _text_property("department")),
    "azure_ad_company_name": ("companyName", _text_property("companyName")),
    "azure_ad_office": ("officeLocation", _text_property("officeLocation")),
}
