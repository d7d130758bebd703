"""QuotaKeys (prefixes, invalid addresses) and catalogue validation."""

from __future__ import annotations

import pytest

from fieldguard.errors import BadRequest, ConfigurationError, MalformedDecision
from fieldguard.limits import Catalogue, Exposure, FailMode, Limiter, QuotaKeys, Strategy
from fieldguard.limits.limiter import counter_key
from tests.limits.limits_fixtures import CATALOGUE


@pytest.mark.parametrize(
    ("ip", "addr", "prefix"),
    [
        ("203.0.113.9", "203.0.113.9", "203.0.113.0/24"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("[2001:db8::1]", "2001:db8::1", "2001:db8::/64"),
        ("fe80::1%eth0", "fe80::1", "fe80::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7", "198.51.100.0/24"),
        (" 10.0.0.255 ", "10.0.0.255", "10.0.0.0/24"),
    ],
)
def test_ip_and_prefix(ip: str, addr: str, prefix: str) -> None:
    keys = QuotaKeys.from_request(subject_id="u7", app="partner-x", ip=ip)
    assert (keys.ip, keys.prefix) == (addr, prefix)
    assert keys.principal == ("subject", "u7")


def test_invalid_ip_shares_one_bucket_or_is_rejected() -> None:
    a = QuotaKeys.from_request(ip="999.1.1.1")
    b = QuotaKeys.from_request(ip="<script>")
    assert a.ip == b.ip == a.prefix == "invalid"
    with pytest.raises(BadRequest):
        QuotaKeys.from_request(ip="nope", on_invalid_ip="reject")


def test_anonymous_and_missing_scopes() -> None:
    keys = QuotaKeys.from_request(subject_id=None, app="", ip="203.0.113.9")
    assert keys.anonymous and keys.app is None
    assert keys.principal == ("ip", "203.0.113.9")
    assert keys.for_scope("subject") is None and keys.for_scope("bogus") is None
    assert QuotaKeys.from_request().principal is None


def test_braces_cannot_change_the_hash_tag() -> None:
    key = counter_key("subject", "evil}{x", "records_day")
    assert key.count("{") == 1 and key.count("}") == 1
    assert key.startswith("{subject:evil%7D%7Bx}")


def test_catalogue_defaults_and_overrides() -> None:
    cat = Catalogue.from_mapping(CATALOGUE, fail_modes={"cost_hour": "allow"})
    assert cat.scopes == ("subject", "app", "ip", "prefix")
    assert cat.quotas["records_day"].strategy is Strategy.MOVING_WINDOW
    assert cat.quotas["records_day"].fail is FailMode.DENY
    assert cat.quotas["cost_hour"].fail is FailMode.ALLOW
    assert cat.quotas["cost_hour"].strategy is Strategy.SLIDING_WINDOW_COUNTER


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"quotas": {}},
        {"quotas": {"q": {"measure": "bytes", "window_seconds": 60}}},
        {"quotas": {"q": {"measure": "cost", "window_seconds": 0}}},
        {"quotas": {"q": {"measure": "cost"}}},
        {"quotas": {"q": {"measure": "cost", "window_seconds": "60"}}},
        {"quotas": {"q": {"measure": "cost", "window_seconds": 60, "strategy": "leaky"}}},
        {"quotas": {"q": {"measure": "cost", "window_seconds": 60, "fail": "maybe"}}},
        {"quotas": {"q": {"measure": "cost", "window_seconds": 60}}, "scopes": ["tenant"]},
        {
            "quotas": {"q": {"measure": "cost", "window_seconds": 60, "scopes": ["ip"]}},
            "scopes": ["subject"],
        },
        # personal data never fails open
        {"quotas": {"q": {"measure": "records", "window_seconds": 60, "fail": "allow"}}},
        {"quotas": {"q": {"measure": "subjects", "window_seconds": 60, "fail": "allow"}}},
        {"quotas": {"q": {"measure": "sensitive", "window_seconds": 60, "fail": "allow"}}},
    ],
)
def test_bad_catalogue_raises_at_construction(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        Limiter.from_url("memory://", quotas=bad)


def test_fail_mode_overrides_are_validated() -> None:
    with pytest.raises(ConfigurationError):
        Catalogue.from_mapping(CATALOGUE, fail_modes={"records_day": "allow"})
    with pytest.raises(ConfigurationError):
        Catalogue.from_mapping(CATALOGUE, fail_modes={"nope": "deny"})


@pytest.mark.parametrize("url", ["mysql://x", "memcached://localhost", "nothing", ""])
def test_bad_url_raises_at_construction(url: str) -> None:
    with pytest.raises(ConfigurationError):
        Limiter.from_url(url, quotas=CATALOGUE)


@pytest.mark.parametrize(
    "bad",
    [
        {
            "quota": "nope",
            "scope": "subject",
            "key": "u7",
            "limit": 1,
            "measure": "records",
            "window_seconds": 86400,
        },
        {
            "quota": "records_day",
            "scope": "subject",
            "key": "u7",
            "limit": 1,
            "measure": "records",
            "window_seconds": 60,
        },
        {
            "quota": "records_day",
            "scope": "subject",
            "key": "u7",
            "limit": 1,
            "measure": "cost",
            "window_seconds": 86400,
        },
        {
            "quota": "records_day",
            "scope": "subject",
            "key": "u7",
            "limit": "1",
            "measure": "records",
            "window_seconds": 86400,
        },
        {
            "quota": "records_day",
            "scope": "subject",
            "key": "u7",
            "limit": -1,
            "measure": "records",
            "window_seconds": 86400,
        },
        {
            "quota": "records_day",
            "scope": "subject",
            "limit": 1,
            "measure": "records",
            "window_seconds": 86400,
        },
        "records_day",
    ],
)
def test_malformed_charges_fail_closed(bad: object) -> None:
    with Limiter.from_url("memory://", quotas=CATALOGUE) as limiter:
        with pytest.raises(MalformedDecision):
            limiter.charge([bad], Exposure(records=1))
        with pytest.raises(MalformedDecision):
            limiter.admit([bad])
