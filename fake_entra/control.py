"""``FakeEntraControl``: drive a fake running in another process through its ``/_fake`` API.

Method names and semantics mirror the in-process control methods of
:class:`~fake_entra.server.FakeEntra`::

    fake = FakeEntraControl("https://127.0.0.1:8443", ca_file=".../fake-entra-bundle.pem")
    fake.put_tenant(tenant)
    fake.add_fault(kind="429", target="users", retry_after=2)
"""

import requests


class FakeEntraControl:
    def __init__(self, base_url, ca_file=None, timeout=30):
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.verify = ca_file if ca_file else True
        self.timeout = timeout

    def _call(self, method, path, payload=None):
        response = self.session.request(
            method, f"{self.base_url}/_fake/{path}", json=payload, timeout=self.timeout)
        if response.status_code >= 400:
            raise RuntimeError(f"fake_entra {method} /_fake/{path}: "
                               f"{response.status_code} {response.text}")
        return response.json()

    def health(self):
        return self._call("GET", "health")

    def tenants(self):
        return self._call("GET", "tenants")

    def tenant(self, tenant_id):
        return self._call("GET", f"tenants/{tenant_id}")

    def put_tenant(self, tenant):
        return self._call("PUT", f"tenants/{tenant['tenant_id']}", tenant)

    def delete_tenant(self, tenant_id):
        return self._call("DELETE", f"tenants/{tenant_id}")

    def set_users(self, tenant_id, users):
        return self._call("PUT", f"tenants/{tenant_id}/users", list(users))

    def add_user(self, tenant_id, user_or_users):
        """Returns the ids of the added users."""
        return self._call("POST", f"tenants/{tenant_id}/users", user_or_users)["added"]

    def update_user(self, tenant_id, user_id, changes):
        return self._call("PATCH", f"tenants/{tenant_id}/users/{user_id}", changes)

    def delete_user(self, tenant_id, user_id):
        return self._call("DELETE", f"tenants/{tenant_id}/users/{user_id}")

    def set_consent(self, tenant_id, granted):
        return self._call("POST", f"tenants/{tenant_id}/consent", {"granted": bool(granted)})

    def set_groups(self, tenant_id, groups):
        return self._call("PUT", f"tenants/{tenant_id}/groups", groups)

    def set_groups_readable(self, tenant_id, readable):
        return self._call("POST", f"tenants/{tenant_id}/groups_readable", {"readable": readable})

    def set_roles(self, tenant_id, roles):
        return self._call("PUT", f"tenants/{tenant_id}/roles", {"roles": list(roles)})

    def set_consent_delay(self, seconds, symptom="token"):
        return self._call("POST", "consent_delay", {"seconds": seconds, "symptom": symptom})

    def delete_user_permanently(self, tenant_id, user_id):
        return self._call("DELETE", f"tenants/{tenant_id}/users/{user_id}/permanently")

    def set_graph_latency(self, milliseconds, jitter=0.1):
        return self._call("POST", "graph_latency", {"milliseconds": milliseconds, "jitter": jitter})

    def set_opaque_tokens(self, opaque=True):
        return self._call("POST", "opaque_tokens", {"opaque": bool(opaque)})

    def cut_handshakes(self, count=1):
        return self._call("POST", "handshakes/cut", {"count": count})

    def set_index_lag(self, seconds):
        return self._call("POST", "index_lag", {"seconds": seconds})

    def expire_delta_tokens(self, tenant_id):
        return self._call("POST", f"tenants/{tenant_id}/delta_tokens/expire")

    def set_delta_quirks(self, **quirks):
        return self._call("POST", "delta_quirks", quirks)

    def set_stale_listing(self, tenant_id, stale=True):
        return self._call("POST", f"tenants/{tenant_id}/stale_listing", {"stale": stale})

    def add_app(self, client_id, client_secret, secret_expired=False, **extra):
        payload = dict(extra, client_id=client_id, client_secret=client_secret,
                       secret_expired=secret_expired)
        return self._call("POST", "apps", payload)

    def add_relationship(self, partner_tenant_id, customer_tenant_id, **properties):
        """A GDAP relationship of the partner with the customer (see GdapState.add_relationship)."""
        return self._call("POST", f"tenants/{partner_tenant_id}/gdap_relationships",
                          {**properties, "customer_tenant_id": customer_tenant_id})

    def relationships(self, partner_tenant_id):
        return self._call("GET", f"tenants/{partner_tenant_id}/gdap_relationships")

    def set_relationship(self, relationship_id, **changes):
        return self._call("PATCH", f"gdap_relationships/{relationship_id}", changes)

    def end_relationship(self, relationship_id, status="terminated"):
        return self._call("POST", f"gdap_relationships/{relationship_id}/end", {"status": status})

    def remove_relationship(self, relationship_id):
        return self._call("DELETE", f"gdap_relationships/{relationship_id}")

    def set_delegated_scopes(self, tenant_id, scopes):
        return self._call("PUT", f"tenants/{tenant_id}/delegated_scopes", {"scopes": list(scopes)})

    def revoke_sign_in_sessions(self, user):
        return self._call("POST", f"users/{user}/revoke_sign_in_sessions")

    def age_refresh_tokens(self, days):
        return self._call("POST", "refresh_tokens/age", {"days": days})

    def add_fault(self, **fault):
        return self._call("POST", "faults", fault)["faults"][0]

    def clear_faults(self):
        return self._call("DELETE", "faults")

    def expire_tokens(self):
        return self._call("POST", "tokens/expire")

    def stats(self):
        return self._call("GET", "stats")

    def reset_stats(self):
        return self._call("POST", "stats/reset")

    def reset(self):
        return self._call("POST", "reset")
