"""The ``/_fake/*`` JSON control API: the in-process control methods, reachable over HTTP.

``dispatch(fake, method, path, payload)`` maps a request to a method of the running
:class:`~fake_entra.server.FakeEntra` and returns ``(status, JSON-able result)``; unknown
tenants/users give 404, bad arguments 400.
"""

import re


def dispatch(fake, method, path, payload):
    try:
        for route_method, pattern, action in CONTROL_ROUTES:
            match = pattern.match(path)
            if match and route_method == method:
                return action(fake, payload, *match.groups())
        return 404, {"error": f"no control endpoint {method} /_fake/{path}"}
    except KeyError as exc:
        return 404, {"error": exc.args[0] if exc.args else "not found"}
    except (ValueError, TypeError) as exc:
        return 400, {"error": str(exc)}


def _set_users(fake, body, tenant_id):
    users = _as_list(body)
    fake.set_users(tenant_id, users)
    return 200, {"count": len(users)}


def _delete_user(fake, body, tenant_id, user_id):
    fake.delete_user(tenant_id, user_id)
    return 200, {"deleted": user_id}


def _delete_tenant(fake, body, tenant_id):
    fake.delete_tenant(tenant_id)
    return 200, {"deleted": tenant_id}


def _set_consent(fake, body, tenant_id):
    granted = bool(_as_dict(body)["granted"])
    fake.set_consent(tenant_id, granted)
    return 200, {"tenant_id": tenant_id, "consented": granted}


def _set_groups(fake, body, tenant_id):
    groups = _as_list(body)
    fake.set_groups(tenant_id, groups)
    return 200, {"count": len(groups)}


def _set_groups_readable(fake, body, tenant_id):
    readable = bool(_as_dict(body)["readable"])
    fake.set_groups_readable(tenant_id, readable)
    return 200, {"tenant_id": tenant_id, "readable": readable}


def _set_roles(fake, body, tenant_id):
    roles = _as_dict(body)["roles"]
    fake.set_roles(tenant_id, roles)
    return 200, {"tenant_id": tenant_id, "roles": sorted(roles)}


def _set_consent_delay(fake, body):
    body = _as_dict(body)
    fake.set_consent_delay(body["seconds"], body.get("symptom", "token"))
    return 200, {"seconds": body["seconds"], "symptom": body.get("symptom", "token")}


def _set_graph_latency(fake, body):
    body = _as_dict(body)
    fake.set_graph_latency(body["milliseconds"], body.get("jitter", 0.1))
    return 200, {"milliseconds": body["milliseconds"]}


def _set_opaque_tokens(fake, body):
    opaque = bool(_as_dict(body)["opaque"])
    fake.set_opaque_tokens(opaque)
    return 200, {"opaque": opaque}


def _cut_handshakes(fake, body):
    count = _as_dict(body).get("count", 1)
    fake.cut_handshakes(count)
    return 200, {"count": count}


def _set_index_lag(fake, body):
    seconds = _as_dict(body)["seconds"]
    fake.set_index_lag(seconds)
    return 200, {"seconds": seconds}


def _expire_delta_tokens(fake, body, tenant_id):
    fake.expire_delta_tokens(tenant_id)
    return 200, {"tenant_id": tenant_id, "expired": True}


def _set_delta_quirks(fake, body):
    fake.set_delta_quirks(**_as_dict(body or {}))
    return 200, fake.delta_quirks()


def _set_stale_listing(fake, body, tenant_id):
    stale = bool(_as_dict(body).get("stale", True))
    fake.set_stale_listing(tenant_id, stale)
    return 200, {"tenant_id": tenant_id, "stale": stale}


def _add_app(fake, body):
    fake.add_app(**_as_dict(body))
    return 201, {"client_id": body["client_id"]}


def _add_relationship(fake, body, partner_tenant_id):
    body = dict(_as_dict(body))
    customer = body.pop("customer_tenant_id")
    return 201, fake.add_relationship(partner_tenant_id, customer, **body)


def _end_relationship(fake, body, relationship_id):
    return 200, fake.end_relationship(relationship_id, _as_dict(body or {}).get("status", "terminated"))


def _set_delegated_scopes(fake, body, tenant_id):
    scopes = _as_dict(body)["scopes"]
    fake.set_delegated_scopes(tenant_id, scopes)
    return 200, {"tenant_id": tenant_id, "scopes": sorted(scopes)}


def _call(method, status=200, result=None):
    """A control action that calls ``fake.<method>()`` and answers ``result`` (or its value)."""
    def action(fake, body):
        value = getattr(fake, method)()
        return status, value if result is None else result
    return action


# /_fake/<path>: (HTTP method, path regex, action(fake, body, *path groups) -> (status, json))
_TENANT = r"tenants/([^/]+)"
_RELATIONSHIP = r"gdap_relationships/([^/]+)"
CONTROL_ROUTES = [(m, re.compile(p + "$"), a) for m, p, a in [
    ("GET", "health", lambda fake, body: (200, {"status": "ok", "base_url": fake.base_url})),
    ("GET", "tenants", _call("tenants")),
    ("GET", _TENANT, lambda fake, body, tid: (200, fake.tenant(tid))),
    ("PUT", _TENANT, lambda fake, body, tid: (200, fake.put_tenant(
        dict(_as_dict(body or {}), tenant_id=tid)))),
    ("DELETE", _TENANT, _delete_tenant),
    ("PUT", _TENANT + "/users", _set_users),
    ("POST", _TENANT + "/users", lambda fake, body, tid: (201, {
        "added": [user["id"] for user in fake.add_user(tid, _as_list(body))]})),
    ("PATCH", _TENANT + "/users/([^/]+)", lambda fake, body, tid, uid: (
        200, fake.update_user(tid, uid, _as_dict(body)))),
    ("DELETE", _TENANT + "/users/([^/]+)", _delete_user),
    ("DELETE", _TENANT + "/users/([^/]+)/permanently", lambda fake, body, tid, uid: (
        fake.delete_user(tid, uid, permanent=True) or (200, {"deleted": uid}))),
    ("POST", _TENANT + "/consent", _set_consent),
    ("PUT", _TENANT + "/groups", _set_groups),
    ("POST", _TENANT + "/groups_readable", _set_groups_readable),
    ("PUT", _TENANT + "/roles", _set_roles),
    ("POST", "consent_delay", _set_consent_delay),
    ("POST", "graph_latency", _set_graph_latency),
    ("POST", "opaque_tokens", _set_opaque_tokens),
    ("POST", "index_lag", _set_index_lag),
    ("POST", "handshakes/cut", _cut_handshakes),
    ("POST", _TENANT + "/delta_tokens/expire", _expire_delta_tokens),
    ("POST", "delta_quirks", _set_delta_quirks),
    ("POST", _TENANT + "/stale_listing", _set_stale_listing),
    ("POST", "apps", _add_app),
    ("GET", _TENANT + "/gdap_relationships", lambda fake, body, tid: (200, fake.relationships(tid))),
    ("POST", _TENANT + "/gdap_relationships", _add_relationship),
    ("PATCH", _RELATIONSHIP, lambda fake, body, rid: (200, fake.set_relationship(rid, **_as_dict(body)))),
    ("POST", _RELATIONSHIP + "/end", _end_relationship),
    ("DELETE", _RELATIONSHIP, lambda fake, body, rid: (
        fake.remove_relationship(rid) or (200, {"removed": rid}))),
    ("PUT", _TENANT + "/delegated_scopes", _set_delegated_scopes),
    ("POST", r"users/([^/]+)/revoke_sign_in_sessions", lambda fake, body, login: (
        fake.revoke_sign_in_sessions(login) or (200, {"revoked": login}))),
    ("POST", "refresh_tokens/age", lambda fake, body: (
        fake.age_refresh_tokens(_as_dict(body)["days"]) or (200, {"aged": _as_dict(body)["days"]}))),
    ("POST", "faults", lambda fake, body: (201, {
        "faults": [fake.add_fault(**_as_dict(fault)) for fault in _as_list(body)]})),
    ("DELETE", "faults", _call("clear_faults", result={"faults": []})),
    ("POST", "tokens/expire", _call("expire_tokens", result={"expired": True})),
    ("GET", "stats", _call("stats")),
    ("POST", "stats/reset", _call("reset_stats", result={"reset": True})),
    ("POST", "reset", _call("reset", result={"reset": True})),
]]


def _as_list(payload):
    if isinstance(payload, dict):
        return [payload]
    if not isinstance(payload, list):
        raise TypeError("expected a JSON object or array")
    return payload


def _as_dict(payload):
    if not isinstance(payload, dict):
        raise TypeError("expected a JSON object")
    return payload
