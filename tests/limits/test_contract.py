"""The limiter contract, run against memory:// and a real redis-server.

Every test here takes ``limiter`` / ``make_limiter``, which are parametrized
over both backends (see conftest.py), so the two must agree.
"""

from __future__ import annotations

import time

import pytest

from fieldguard.errors import QuotaExceeded
from fieldguard.limits import Exposure, Limiter, QuotaKeys
from fieldguard.limits.limiter import counter_key
from tests.limits.limits_fixtures import CATALOGUE, LimiterFactory, charge

KEYS = QuotaKeys.from_request(subject_id="u7", app="partner-x", ip="203.0.113.9")


def test_fresh_usage_is_empty_with_every_scope(limiter: Limiter) -> None:
    data = limiter.read(KEYS).as_input()
    assert data["usage"] == {"subject": {}, "app": {}, "ip": {}, "prefix": {}}
    assert data["signals"]["enumeration_score"] == 0.0
    assert data["signals"]["distinct_subjects_day"] == 0
    assert data["signals"]["request_rate_minute"] == 0


def test_charge_then_read_per_scope(limiter: Limiter) -> None:
    charges = [
        charge("records_day", "subject", "u7", 600),
        charge("records_day", "ip", "203.0.113.9", 900),
        charge("records_day", "prefix", "203.0.113.0/24", 2000),
        charge("cost_hour", "app", "partner-x", 5000),
        charge("requests_minute", "subject", "u7", 60),
    ]
    exposure = Exposure(records=20, subjects=frozenset({"a", "b", "c"}), cost=212)
    result = limiter.charge(charges, exposure, keys=KEYS)
    assert [c.used for c in result.counters] == [20, 20, 20, 212, 1]
    assert not result.exhausted and result.retry_after == 0
    limiter.charge(charges, exposure, keys=KEYS)

    data = limiter.read(KEYS).as_input()
    assert data["usage"]["subject"] == {"records_day": 40, "requests_minute": 2}
    assert data["usage"]["ip"] == {"records_day": 40}
    assert data["usage"]["prefix"] == {"records_day": 40}
    assert data["usage"]["app"] == {"cost_hour": 424}
    signals = data["signals"]
    assert signals["records_day"] == 40
    assert signals["request_rate_minute"] == 2
    assert signals["distinct_subjects_day"] == 3  # the same three subjects twice


def test_scopes_are_isolated_and_anonymous_reads_skip_subject(limiter: Limiter) -> None:
    limiter.charge([charge("records_day", "subject", "u7", 600)], Exposure(records=5))
    other = QuotaKeys.from_request(subject_id="u8", ip="203.0.113.10")
    assert limiter.read(other).as_input()["usage"]["subject"] == {}
    anon = QuotaKeys.from_request(ip="203.0.113.9")
    usage = limiter.read(anon)
    assert usage.as_input()["usage"]["subject"] == {}
    assert usage.used("subject", "records_day") == 0


def test_charge_past_the_limit_saturates(limiter: Limiter) -> None:
    c = [charge("records_day", "subject", "u7", 10)]
    first = limiter.charge(c, Exposure(records=8))
    assert first.counters[0].remaining == 2
    second = limiter.charge(c, Exposure(records=50))  # already exposed: recorded anyway
    state = second.counters[0]
    assert (state.used, state.remaining, state.exhausted) == (10, 0, True)
    assert 0 < second.retry_after <= 86400
    assert second.headers()["RateLimit-Remaining"] == "0"
    assert limiter.read(KEYS).used("subject", "records_day") == 10


def test_sliding_window_counter_charges(limiter: Limiter) -> None:
    c = [charge("cost_hour", "app", "partner-x", 1000)]
    limiter.charge(c, Exposure(cost=600))
    result = limiter.charge(c, Exposure(cost=600))
    assert result.counters[0].used == 1200 and result.counters[0].exhausted
    assert result.retry_after > 0
    assert limiter.read(KEYS).used("app", "cost_hour") == 1200


def test_admit_is_all_or_nothing(limiter: Limiter) -> None:
    roomy = charge("records_day", "subject", "u7", 100)
    tight = charge("records_day", "ip", "203.0.113.9", 3)
    assert limiter.admit([roomy, tight], 2).admitted
    refused = limiter.admit([roomy, tight], 2)
    assert not refused.admitted
    assert [c.charge.scope for c in refused.blocked] == ["ip"]
    assert refused.retry_after > 0
    with pytest.raises(QuotaExceeded) as err:
        refused.require()
    assert err.value.retry_after and err.value.reasons[0].code == "quota.records_day"
    usage = limiter.read(KEYS)
    # The refused reservation wrote nothing, to either counter.
    assert usage.used("subject", "records_day") == 2
    assert usage.used("ip", "records_day") == 2


def test_admit_exhausted_refuses_even_zero_estimate(limiter: Limiter) -> None:
    c = [charge("records_day", "subject", "u7", 2)]
    limiter.charge(c, Exposure(records=2))
    assert not limiter.admit(c, 0).admitted
    fresh = [charge("records_day", "subject", "u9", 2)]
    assert limiter.admit(fresh, 0).admitted
    assert limiter.read(QuotaKeys.from_request("u9")).used("subject", "records_day") == 0


@pytest.mark.parametrize("quota", ["records_day", "cost_hour"])
def test_settle_refunds_or_adds_the_difference(limiter: Limiter, quota: str) -> None:
    scope, key = ("subject", "u7") if quota == "records_day" else ("app", "partner-x")
    c = [charge(quota, scope, key, 100)]
    measure = CATALOGUE["quotas"][quota]["measure"]
    reservation = limiter.admit(c, {measure: 50})
    assert reservation.admitted and reservation.counters[0].used == 50
    settled = limiter.settle(reservation, Exposure(records=3, cost=3), keys=KEYS)
    assert settled.counters[0].used == 3
    more = limiter.admit(c, 10)
    assert limiter.settle(more, Exposure(records=25, cost=25)).counters[0].used == 28
    assert limiter.read(KEYS).used(scope, quota) == 28


def test_release_a_reservation(limiter: Limiter) -> None:
    c = [charge("records_day", "subject", "u7", 5)]
    reservation = limiter.admit(c, 5)
    assert not limiter.admit(c, 1).admitted
    limiter.settle(reservation, Exposure(requests=0))
    assert limiter.admit(c, 5).admitted


def test_settling_a_refused_reservation_charges_the_exposure(limiter: Limiter) -> None:
    c = [charge("records_day", "subject", "u7", 5)]
    refused = limiter.admit(c, 6)
    assert not refused.admitted
    assert limiter.settle(refused, Exposure(records=1)).counters[0].used == 1


@pytest.mark.parametrize("quota", ["records_day", "cost_hour"])
def test_release_gives_back_a_pending_reservation(limiter: Limiter, quota: str) -> None:
    scope, key = ("subject", "u7") if quota == "records_day" else ("app", "partner-x")
    c = [charge(quota, scope, key, 10), charge("requests_minute", "subject", "u7", 5)]
    measure = CATALOGUE["quotas"][quota]["measure"]
    reservation = limiter.admit(c, {measure: 10, "requests": 1})
    assert reservation.admitted
    assert not limiter.admit(c, {measure: 1, "requests": 1}).admitted
    released = limiter.release(reservation, keys=KEYS)
    assert [s.used for s in released.counters] == [0, 0]
    usage = limiter.read(KEYS)
    assert usage.used(scope, quota) == 0 and usage.used("subject", "requests_minute") == 0
    # Releasing records no behavioural signal: the request never happened.
    assert usage.signals["request_rate_minute"] == 0
    assert limiter.admit(c, {measure: 10, "requests": 1}).admitted


def test_release_of_a_refused_reservation_changes_nothing(limiter: Limiter) -> None:
    c = [charge("records_day", "subject", "u7", 5)]
    limiter.charge(c, Exposure(records=4))
    refused = limiter.admit(c, 3)
    assert not refused.admitted
    assert limiter.release(refused).counters[0].used == 4
    assert limiter.read(KEYS).used("subject", "records_day") == 4


@pytest.mark.parametrize(("reserved", "actual"), [(10, 3), (10, 10), (0, 4), (2, 7)])
def test_released_settlement_refunds_exactly_what_it_counted(
    limiter: Limiter, reserved: int, actual: int
) -> None:
    """``settle(...).held`` can be released: a response dropped after its
    charge (say, the audit sink failed) costs nothing, whether the request
    exposed less than, as much as or more than it reserved — and another
    request's entries in the same window are left alone."""
    c = [charge("records_day", "subject", "u7", 50), charge("cost_hour", "app", "partner-x", 50)]
    other = limiter.admit(c, {"records": 5, "cost": 5})
    limiter.settle(other, Exposure(records=5, cost=5))
    mine = limiter.admit(c, {"records": reserved, "cost": reserved})
    settled = limiter.settle(mine, Exposure(records=actual, cost=actual), keys=KEYS)
    assert [s.used for s in settled.counters] == [5 + actual, 5 + actual]
    assert settled.held is not None and settled.held.amounts == (actual, actual)  # type: ignore[attr-defined]
    released = limiter.release(settled.held, keys=KEYS)
    assert [s.used for s in released.counters] == [5, 5]
    usage = limiter.read(KEYS)
    assert usage.used("subject", "records_day") == 5 and usage.used("app", "partner-x") == 0
    assert usage.used("app", "cost_hour") == 5


async def test_async_release(limiter: Limiter) -> None:
    c = [charge("records_day", "subject", "u7", 10)]
    reservation = await limiter.aadmit(c, 8)
    settled = await limiter.asettle(reservation, Exposure(records=2))
    assert settled.counters[0].used == 2 and settled.held is not None
    assert (await limiter.arelease(settled.held)).counters[0].used == 0
    assert (await limiter.arelease(await limiter.aadmit(c, 4))).counters[0].used == 0
    await limiter.aclose()


def test_moving_window_entries_expire(make_limiter: LimiterFactory) -> None:
    catalogue = {"quotas": {"burst": {"measure": "requests", "window_seconds": 1}}}
    limiter = make_limiter(catalogue)
    c = [charge("burst", "ip", "203.0.113.9", 2, catalogue)]
    assert limiter.admit(c).admitted and limiter.admit(c).admitted
    refused = limiter.admit(c)
    assert not refused.admitted and refused.retry_after == 1
    # Wait out the 1 s window (no timing is asserted, only the window's effect).
    deadline = time.monotonic() + 5
    while not limiter.admit(c).admitted:
        assert time.monotonic() < deadline, "window never slid"
        time.sleep(0.1)


def test_reset_forgets_everything(limiter: Limiter) -> None:
    limiter.charge(
        [charge("records_day", "subject", "u7", 10)],
        Exposure(records=4, probed_ids=("1", "2", "3")),
        keys=KEYS,
    )
    limiter.reset()
    data = limiter.read(KEYS).as_input()
    assert data["usage"]["subject"] == {} and data["signals"]["probed_ids"] == 0


async def test_async_twins(limiter: Limiter) -> None:
    c = [charge("records_day", "subject", "u7", 10), charge("cost_hour", "app", "partner-x", 50)]
    result = await limiter.acharge(c, Exposure(records=4, cost=20), keys=KEYS)
    assert [s.used for s in result.counters] == [4, 20]
    usage = await limiter.aread(KEYS)
    assert usage.as_input()["usage"]["subject"] == {"records_day": 4}
    reservation = await limiter.aadmit(c, {"records": 6, "cost": 30})
    assert reservation.admitted
    assert not (await limiter.aadmit(c, 1)).admitted
    settled = await limiter.asettle(reservation, Exposure(records=1, cost=1))
    assert [s.used for s in settled.counters] == [5, 21]
    await limiter.aclose()


def test_charge_without_keys_uses_the_subject_charge(limiter: Limiter) -> None:
    limiter.charge(
        [charge("records_day", "subject", "u7", 10)], Exposure(records=2, subjects=frozenset({"x"}))
    )
    assert limiter.read(KEYS).signals["distinct_subjects_day"] == 1


def test_moving_window_counters_are_limits_windows(limiter: Limiter, backend_url: str) -> None:
    """The batch script keeps ``limits``' layout: ``limits``' own storage reads
    our counters and its ``acquire_entry`` agrees on the room left."""
    from limits.storage import RedisStorage

    c = charge("records_day", "subject", "u7", 10)
    limiter.charge([c], Exposure(records=7))
    key = counter_key("subject", "u7", "records_day")
    if backend_url == "memory://":
        storage = limiter.backend.storage  # type: ignore[attr-defined]
    else:
        storage = RedisStorage(backend_url, key_prefix="fieldguard")
    assert storage.get_moving_window(key, 10, 86400)[1] == 7
    assert storage.acquire_entry(key, 10, 86400, amount=3)
    assert not storage.acquire_entry(key, 10, 86400, amount=1)
    assert limiter.read_counter(c) == 10
    assert not limiter.admit([c], 1).admitted
