"""Which Odoo customer is a partner's customer tenant? (plain Python, no Odoo)

A verified domain of the tenant decides first: Microsoft lets a domain be verified in one tenant
only, so a company whose website, email or synced contacts use it is that customer. Only when no
domain decides, the names are compared (legal forms and punctuation ignored). A proposal is made
only when it points at exactly one company; an administrator confirms it either way.
"""

import re
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .graph_client import domain_name

# Legal forms and filler words left out when names are compared ("Contoso Ltd." = "Contoso").
LEGAL_FORMS = frozenset({
    "ab", "ag", "as", "bv", "co", "company", "corp", "corporation", "gmbh", "inc", "incorporated",
    "kg", "limited", "llc", "llp", "ltd", "nv", "oy", "plc", "pty", "sa", "sarl", "sas", "spa",
    "srl", "the", "ug", "and",
})


def website_domain(url):
    """The host of a website address, without a leading www. ("https://www.contoso.com/x" →
    "contoso.com"); None if it has none."""
    if not isinstance(url, str) or not url.strip():
        return None
    text = url.strip()
    if "//" not in text:
        text = f"//{text}"
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    host = domain_name(host or "")
    if host and host.startswith("www."):
        host = domain_name(host[4:]) or host
    return host


def email_domain(email):
    """The domain of an email address, None if it has none."""
    if not isinstance(email, str) or email.count("@") != 1:
        return None
    return domain_name(email.strip().rsplit("@", 1)[1])


def normalized_name(name):
    """A company name for comparison: case, accents, punctuation and legal forms left out."""
    text = unicodedata.normalize("NFKD", str(name or "")).encode("ascii", "ignore").decode().lower()
    text = text.replace("&", " and ")
    words = [word for word in re.split(r"[^a-z0-9]+", text) if word and word not in LEGAL_FORMS]
    return " ".join(words)


def covers(verified, domain):
    """Whether a company domain belongs to a verified domain (itself or a subdomain of it)."""
    return domain == verified or domain.endswith(f".{verified}")


@dataclass
class Company:
    """An Odoo customer as matching sees it: its id, name, and the domains it uses, each with
    where it was found (``website``, ``email``, ``contact``)."""

    company_id: int
    name: str
    domains: dict = field(default_factory=dict)  # domain -> source

    def add_domain(self, domain, source):
        if domain and domain not in self.domains:
            self.domains[domain] = source


@dataclass(frozen=True)
class Proposal:
    """The proposed company (None: none), why (``domain`` or ``name``), what matched, and the
    companies that matched equally when several did (nobody is proposed then)."""

    company_id: int | None = None
    reason: str | None = None
    detail: str = ""
    candidates: tuple = ()


class Matcher:
    """Proposes a company for each tenant; built once from all customers."""

    def __init__(self, companies):
        self.companies = list(companies)
        self._by_name = {}
        for company in self.companies:
            key = normalized_name(company.name)
            if key:
                self._by_name.setdefault(key, []).append(company)

    def propose(self, verified_domains, tenant_name):
        verified = sorted({name for name in map(domain_name, verified_domains or ()) if name})
        by_domain = {}
        for company in self.companies:
            for domain, source in company.domains.items():
                hit = next((v for v in verified if covers(v, domain)), None)
                if hit:
                    by_domain.setdefault(company.company_id, (company, domain, source))
                    break
        if len(by_domain) == 1:
            company, domain, source = next(iter(by_domain.values()))
            return Proposal(company.company_id, "domain", f"{domain} ({source})")
        if len(by_domain) > 1:
            return Proposal(candidates=tuple(sorted(by_domain)))
        same_name = self._by_name.get(normalized_name(tenant_name), [])
        if len(same_name) == 1:
            return Proposal(same_name[0].company_id, "name", same_name[0].name)
        return Proposal(candidates=tuple(sorted(company.company_id for company in same_name)))
