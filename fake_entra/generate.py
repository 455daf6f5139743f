"""Deterministic synthetic tenants, from a handful of users to 100,000+.

``generate_users(n, seed=…)`` returns Graph user objects; the same seed gives the same users,
and a smaller ``n`` gives a prefix of a larger one. The default mix exercises the sync's skip
rules (about 3 % guests, 3 % disabled, 2 % without ``mail`` but with a primary ``SMTP:`` proxy
address, 1 % without any email, and some users without job title or mobile phone); guests and
users without any email have no ``assignedLicenses``, everyone else one licence. ``plain=True``
makes every user an enabled member with a mail (for benchmarks).

CLI::

    python -m fake_entra.generate --users 50000 --seed 7 --tenant-id <guid> \\
        --name "Big Corp" --domain bigcorp.example --out bigcorp.json [--plain]
"""

import argparse
import json
import random
import sys
import time
import uuid

GIVEN_NAMES = (
    "Adele", "Alex", "Allan", "Amira", "Ana", "Anton", "Ben", "Bianca", "Carlos", "Chen",
    "Christie", "Dana", "Diego", "Elena", "Emil", "Fatima", "Felix", "Grady", "Hana", "Henrietta",
    "Ines", "Isaiah", "Jana", "Johanna", "Jonas", "Joni", "Kai", "Lara", "Lee", "Lidia", "Luca",
    "Lynne", "Mara", "Megan", "Miriam", "Nestor", "Nora", "Omar", "Patti", "Pradeep", "Priya",
    "Rafael", "Sofia", "Stefan", "Tariq", "Yuki", "Zoe",
)
SURNAMES = (
    "Adams", "Becker", "Bianchi", "Brown", "Castillo", "Chen", "Dubois", "Fischer", "Garcia",
    "Hansen", "Holt", "Ivanova", "Jansen", "Kim", "Kowalski", "Larsen", "Lopez", "Martin",
    "Meyer", "Moreau", "Müller", "Nakamura", "Novak", "O'Brien", "Patel", "Rossi", "Schmidt",
    "Silva", "Singh", "Sherman", "Tanaka", "Vance", "Weber", "Wilber", "Yilmaz", "Zhang",
)
JOB_TITLES = (
    "Accountant", "Sales Manager", "Software Engineer", "Marketing Specialist", "HR Generalist",
    "IT Administrator", "Project Manager", "Customer Success Manager", "Office Manager",
    "Product Owner", "Financial Controller", "Support Engineer", "Chief Executive Officer",
)
DEPARTMENTS = ("Finance", "Sales", "Engineering", "Marketing", "HR", "IT", "Operations")
OFFICES = ("Seattle", "Berlin", "Paris", "London", "Remote", "New York", "Munich")
GUEST_DOMAINS = ("partner.example", "supplier.example", "gmail.example", "outlook.example")
E3_SKU = "6fd2c87f-b296-42f0-b197-1e91e994b900"  # Office 365 E3


def _guid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _phone(rng, prefix):
    return f"{prefix} {rng.randrange(100, 1000)} {rng.randrange(1000, 10000)}"


def _ascii_local(text):
    return "".join(c for c in text.lower().replace("ü", "ue") if c.isalnum())


def generate_users(n, seed=0, domain="contoso.example", plain=False, company=None):
    """``n`` Graph user objects for a tenant whose default domain is ``domain``."""
    rng = random.Random(seed)
    initial_domain = f"{domain.split('.')[0]}.onmicrosoft.com"
    company = company or domain.split(".")[0].capitalize()
    seen_locals = {}
    users = []
    for _ in range(n):
        given, surname = rng.choice(GIVEN_NAMES), rng.choice(SURNAMES)
        base = f"{_ascii_local(given)}.{_ascii_local(surname)}"
        seen_locals[base] = seen_locals.get(base, 0) + 1
        local = base if seen_locals[base] == 1 else f"{base}{seen_locals[base]}"
        roll = 1.0 if plain else rng.random()
        user = {
            "id": _guid(rng),
            "givenName": given,
            "surname": surname,
            "displayName": f"{given} {surname}",
            "jobTitle": rng.choice(JOB_TITLES) if plain or rng.random() > 0.1 else None,
            "mobilePhone": _phone(rng, "+1 425") if plain or rng.random() > 0.3 else None,
            "businessPhones": [_phone(rng, "+1 206")] if rng.random() > 0.5 else [],
            "mail": f"{local}@{domain}",
            "userPrincipalName": f"{local}@{domain}",
            "proxyAddresses": [f"SMTP:{local}@{domain}", f"smtp:{local}@{initial_domain}"],
            "otherMails": [],
            "accountEnabled": True,
            "userType": "Member",
            "department": rng.choice(DEPARTMENTS),
            "companyName": company,
            "officeLocation": rng.choice(OFFICES),
            "assignedLicenses": [{"disabledPlans": [], "skuId": E3_SKU}],
        }
        if roll < 0.03:  # B2B guest: external mail, #EXT# UPN in the initial domain
            external = rng.choice(GUEST_DOMAINS)
            user.update(
                mail=f"{local}@{external}",
                userPrincipalName=f"{local}_{external}#EXT#@{initial_domain}",
                proxyAddresses=[f"SMTP:{local}@{external}"],
                otherMails=[f"{local}@{external}"],
                userType="Guest", companyName=None, department=None, assignedLicenses=[],
            )
        elif roll < 0.06:
            user["accountEnabled"] = False
        elif roll < 0.08:  # no mailbox attribute, but a primary SMTP address
            user["mail"] = None
        elif roll < 0.09:  # no email anywhere
            user.update(mail=None, proxyAddresses=[], userPrincipalName=f"{local}@{initial_domain}",
                        assignedLicenses=[])
        users.append(user)
    return users


def generate_tenant(n, seed=0, tenant_id=None, name="Generated Ltd", domain="generated.example",
                    plain=False, consented=False):
    """A tenant dict in the format of ``fake_entra/tenants/*.json``."""
    tenant_id = tenant_id or str(uuid.UUID(int=random.Random(f"tenant-{seed}").getrandbits(128),
                                            version=4))
    return {
        "tenant_id": tenant_id,
        "display_name": name,
        "consented": consented,
        "domains": [domain, f"{domain.split('.')[0]}.onmicrosoft.com"],
        "users": generate_users(n, seed=seed, domain=domain, plain=plain, company=name),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fake_entra.generate",
                                     description="Write a deterministic fake Entra tenant (JSON).")
    parser.add_argument("--users", type=int, required=True, help="number of users")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same tenant)")
    parser.add_argument("--tenant-id", help="tenant GUID (default: derived from the seed)")
    parser.add_argument("--name", default="Generated Ltd", help="tenant display name")
    parser.add_argument("--domain", default="generated.example", help="default domain")
    parser.add_argument("--out", default="-", help="output file ('-': stdout)")
    parser.add_argument("--plain", action="store_true",
                        help="only enabled members with a mail (benchmarks)")
    parser.add_argument("--consented", action="store_true", help="mark the tenant consented")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    tenant = generate_tenant(args.users, seed=args.seed, tenant_id=args.tenant_id,
                             name=args.name, domain=args.domain, plain=args.plain,
                             consented=args.consented)
    if args.out == "-":
        json.dump(tenant, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(tenant, f, ensure_ascii=False)
        print(f"{args.out}: {args.users} users, tenant {tenant['tenant_id']} "
              f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
