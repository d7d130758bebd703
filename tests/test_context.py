from __future__ import annotations

import pytest

from fieldguard.context import Caller, Client, Subject, ip_prefix
from fieldguard.errors import BadRequest


def test_prefixes() -> None:
    assert ip_prefix("203.0.113.77") == "203.0.113.0/24"
    assert ip_prefix("2001:db8:1:2:3::9") == "2001:db8:1:2::/64"
    with pytest.raises(BadRequest):
        ip_prefix("not-an-ip")


def test_caller_input_document() -> None:
    doc = Caller(Subject("u1", roles=("support",), verified=True), Client("192.0.2.1", app="x"),
                 purpose="support").as_input()
    assert doc["subject"] == {"id": "u1", "authenticated": True, "roles": ["support"],
                              "scopes": [], "tier": None, "verified": True,
                              "account_age_days": None}
    assert doc["client"]["prefix"] == "192.0.2.0/24" and doc["purpose"] == "support"
    assert not Subject.anonymous().authenticated


def test_ipv4_mapped_addresses_are_plain_ipv4() -> None:
    # A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; regorus's
    # net.cidr_contains would not match them against IPv4 deny lists.
    doc = Client("::ffff:192.0.2.200").as_input()
    assert doc["ip"] == "192.0.2.200" and doc["prefix"] == "192.0.2.0/24"


def test_mapped_address_hits_the_ipv4_deny_list() -> None:
    from fieldguard.errors import AccessDenied
    from fieldguard.guard import Guard, Operation

    guard = Guard()
    session = guard.session(Caller(Subject("u7"), Client("::ffff:192.0.2.200")))
    with pytest.raises(AccessDenied) as err:
        session.decide(Operation("graphql", "query", None, fields={"User.id": 1},
                                 complexity={"depth": 1}))
    assert err.value.reasons[0].code == "network.blocked"
