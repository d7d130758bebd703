"""Storage outage: typed errors, fail modes from the catalogue, recovery.

Each test owns a redis-server, stops it mid-test and restarts it on the same
port. Nothing here is mocked.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis

from fieldguard.errors import StorageError
from fieldguard.limits import Exposure, Limiter, QuotaKeys
from tests.limits.limits_fixtures import charge
from tests.support.redis_server import RedisServer

CATALOGUE: dict[str, Any] = {
    "quotas": {
        "records_day": {"measure": "records", "window_seconds": 86400},  # deny (default)
        "cost_hour": {"measure": "cost", "window_seconds": 3600, "fail": "allow"},
        "requests_minute": {"measure": "requests", "window_seconds": 60, "fail": "allow"},
    },
    "scopes": ["subject", "app", "ip", "prefix"],
}
# Only fail-open quotas: reads may degrade for authenticated callers.
OPEN_ONLY: dict[str, Any] = {
    "quotas": {k: v for k, v in CATALOGUE["quotas"].items() if k != "records_day"},
    "scopes": CATALOGUE["scopes"],
}
USER = QuotaKeys.from_request(subject_id="u7", app="partner-x", ip="203.0.113.9")
ANON = QuotaKeys.from_request(ip="203.0.113.9")
RECORDS = charge("records_day", "subject", "u7", 600, CATALOGUE)
COST = charge("cost_hour", "app", "partner-x", 5000, CATALOGUE)


def _assert_storage_error(err: pytest.ExceptionInfo[StorageError]) -> None:
    assert err.value.backend == "redis"
    assert err.value.code == "STORAGE_UNAVAILABLE" and err.value.http_status == 503
    assert isinstance(err.value.__cause__, redis.exceptions.RedisError)


def test_fail_closed_quota_raises_storage_error(own_redis: RedisServer) -> None:
    limiter = Limiter.from_url(own_redis.url, quotas=CATALOGUE)
    limiter.charge([RECORDS], Exposure(records=3), keys=USER)
    own_redis.stop()
    with pytest.raises(StorageError) as err:
        limiter.read(USER)
    _assert_storage_error(err)
    with pytest.raises(StorageError) as err:
        limiter.charge([RECORDS, COST], Exposure(records=1, cost=1), keys=USER)
    _assert_storage_error(err)
    with pytest.raises(StorageError):
        limiter.admit([RECORDS], 1, keys=USER)
    limiter.close()


def test_fail_open_quotas_degrade_for_authenticated_callers(own_redis: RedisServer) -> None:
    limiter = Limiter.from_url(own_redis.url, quotas=OPEN_ONLY)
    own_redis.stop()
    usage = limiter.read(USER)
    assert usage.degraded and usage.as_input()["signals"] == {"degraded": True}
    assert usage.as_input()["usage"]["subject"] == {}
    result = limiter.charge([COST], Exposure(cost=10), keys=USER)
    assert result.degraded and result.counters == ()
    reservation = limiter.admit([COST], 10, keys=USER)
    assert reservation.admitted and reservation.degraded
    assert limiter.settle(reservation, Exposure(cost=10), keys=USER).degraded
    assert limiter.release(reservation, keys=USER).degraded
    limiter.close()


def test_release_during_an_outage_fails_closed(own_redis: RedisServer) -> None:
    """A reservation that cannot be given back stays counted (until its window
    ends): an outage never turns into more room."""
    limiter = Limiter.from_url(own_redis.url, quotas=CATALOGUE)
    reservation = limiter.admit([RECORDS], 50, keys=USER)
    assert reservation.admitted
    own_redis.stop()
    with pytest.raises(StorageError) as err:
        limiter.release(reservation, keys=USER)
    _assert_storage_error(err)
    limiter.close()


def test_anonymous_callers_always_fail_closed(own_redis: RedisServer) -> None:
    limiter = Limiter.from_url(own_redis.url, quotas=OPEN_ONLY)
    own_redis.stop()
    with pytest.raises(StorageError):
        limiter.read(ANON)
    ip_cost = charge("cost_hour", "ip", "203.0.113.9", 100, CATALOGUE)
    with pytest.raises(StorageError):
        limiter.charge([ip_cost], Exposure(cost=1), keys=ANON)
    with pytest.raises(StorageError):  # no keys: no subject charge means anonymous
        limiter.charge([ip_cost], Exposure(cost=1))
    limiter.close()


def test_recovers_after_restart_on_the_same_port(own_redis: RedisServer) -> None:
    limiter = Limiter.from_url(own_redis.url, quotas=CATALOGUE)
    assert limiter.charge([RECORDS], Exposure(records=2), keys=USER).counters[0].used == 2
    port = own_redis.port
    own_redis.stop()
    with pytest.raises(StorageError):
        limiter.read(USER)
    own_redis.start()
    assert own_redis.port == port
    # A fresh, empty server (no persistence): same limiter, no rebuild, and the
    # script is re-loaded on NOSCRIPT.
    assert limiter.read(USER).used("subject", "records_day") == 0
    assert limiter.charge([RECORDS], Exposure(records=4), keys=USER).counters[0].used == 4
    assert limiter.admit([RECORDS], 1, keys=USER).admitted
    limiter.close()


async def test_async_outage_and_recovery(own_redis: RedisServer) -> None:
    limiter = Limiter.from_url(own_redis.url, quotas=CATALOGUE)
    await limiter.acharge([RECORDS], Exposure(records=1), keys=USER)
    own_redis.stop()
    with pytest.raises(StorageError) as err:
        await limiter.aread(USER)
    _assert_storage_error(err)
    with pytest.raises(StorageError):
        await limiter.aadmit([RECORDS], 1, keys=USER)
    own_redis.start()
    usage = await limiter.aread(USER)
    assert not usage.degraded
    result = await limiter.acharge([RECORDS], Exposure(records=3), keys=USER)
    assert result.counters[0].used == 3
    await limiter.aclose()


def test_unreachable_at_startup_is_not_a_configuration_error(own_redis: RedisServer) -> None:
    """Redis being down at boot is an outage, reported per call, not a crash."""
    own_redis.stop()
    limiter = Limiter.from_url(own_redis.url, quotas=CATALOGUE)
    with pytest.raises(StorageError):
        limiter.read(USER)
    own_redis.start()
    assert limiter.read(USER).used("subject", "records_day") == 0
    limiter.close()
