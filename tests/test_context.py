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
