"""Signals: sequential-id probing score, distinct subjects (HLL / exact),
records and request rate — and the round trips each phase costs on Redis."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fieldguard.limits import Exposure, Limiter, QuotaKeys, SignalConfig, probing_score
from fieldguard.limits.signals import parse_probe_id
from tests.limits.limits_fixtures import CATALOGUE, LimiterFactory, charge, redis_calls

KEYS = QuotaKeys.from_request(subject_id="u7", app="partner-x", ip="203.0.113.9")

# -- the probing score, as a pure function ---------------------------------


def test_walker_scores_one() -> None:
    assert probing_score([str(i) for i in range(1000, 1010)]) == 1.0


def test_shuffled_and_strided_walks_score_one() -> None:
    ids = [str(i) for i in range(5000, 5060, 2)]
    random.Random(7).shuffle(ids)
    assert probing_score(ids) == 1.0


def test_random_profiles_score_low() -> None:
    rng = random.Random(42)
    ids = [str(rng.randrange(1, 10_000_000)) for _ in range(30)]
    assert probing_score(ids) < 0.1


def test_a_few_profiles_score_low_even_when_adjacent() -> None:
    assert probing_score(["1005", "1006"]) == 0.2
    assert probing_score(["1005"]) == 0.0
    assert probing_score(["1005", "1005", "1005"]) == 0.0  # re-reading is not probing
    assert probing_score(["42", "90210", "7", "1234567"]) == 0.0


def test_namespaces_and_opaque_ids() -> None:
    assert parse_probe_id("user_1005") == ("user_", 1005)
    assert parse_probe_id("dXNlcjox") is None
    mixed = [f"user_{i}" if i % 2 else f"order_{i}" for i in range(100, 120)]
    assert probing_score(mixed) == 1.0  # each namespace walked with stride 2
    interleaved = [f"a{i}" for i in (1, 50, 99)] + [f"b{i}" for i in (2, 51, 100)]
    assert probing_score(interleaved) == 0.0  # a1 and b2 are not neighbours


def test_partial_walk_scores_in_between() -> None:
    rng = random.Random(3)
    walk = [str(i) for i in range(2000, 2010)]
    noise = [str(rng.randrange(10**6, 10**7)) for _ in range(10)]
    assert 0.4 <= probing_score(walk + noise) <= 0.6


@given(st.lists(st.text(max_size=12) | st.integers(0, 10**9).map(str), max_size=80))
def test_score_is_always_in_unit_interval(ids: list[str]) -> None:
    assert 0.0 <= probing_score(ids) <= 1.0


# -- end to end on both backends -------------------------------------------


def test_walker_is_flagged_and_a_reader_is_not(limiter: Limiter) -> None:
    c = [charge("requests_minute", "subject", "u7", 1000)]
    for i in range(1000, 1015):  # user(id: "1000"), user(id: "1001"), ...
        limiter.charge(c, Exposure(records=1, probed_ids=(str(i),)), keys=KEYS)
    signals = limiter.read(KEYS).signals
    assert signals["enumeration_score"] == 1.0 and signals["probed_ids"] == 15

    reader = QuotaKeys.from_request(subject_id="u8", ip="198.51.100.1")
    for profile in ("4521", "98812", "150", "77003", "1200345"):
        limiter.charge(
            [charge("requests_minute", "subject", "u8", 1000)],
            Exposure(records=1, probed_ids=(profile,)),
            keys=reader,
        )
    assert limiter.read(reader).signals["enumeration_score"] == 0.0


def test_probe_memory_is_bounded(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter(signals=SignalConfig(probe_max_ids=16))
    ids = tuple(str(i) for i in range(100))
    limiter.charge([], Exposure(probed_ids=ids), keys=KEYS)
    assert limiter.read(KEYS).signals["probed_ids"] == 16


def test_anonymous_signals_follow_the_ip(limiter: Limiter) -> None:
    anon = QuotaKeys.from_request(ip="192.0.2.1")
    limiter.charge([], Exposure(records=7, subjects=frozenset({"s1", "s2"})), keys=anon)
    signals = limiter.read(anon).signals
    assert (signals["records_day"], signals["distinct_subjects_day"]) == (7, 2)
    assert limiter.read(QuotaKeys.from_request(ip="192.0.2.2")).signals["records_day"] == 0


def test_distinct_subjects_estimate(limiter: Limiter, backend_url: str) -> None:
    """5,000 distinct subjects over 10 requests, half of them seen twice.

    Memory is exact; Redis' HyperLogLog has a 0.81% standard error, so 3%
    (over 3.5 standard errors) is a safe bound that still catches a broken
    union (which would be off by ~50%).
    """
    for batch in range(10):
        subjects = frozenset(f"user-{i}" for i in range(batch * 500, batch * 500 + 500))
        again = frozenset(f"user-{i}" for i in range(0, batch * 250))
        limiter.charge([], Exposure(records=500, subjects=subjects | again), keys=KEYS)
    count = limiter.read(KEYS).signals["distinct_subjects_day"]
    if backend_url == "memory://":
        assert count == 5000
    else:
        assert abs(count - 5000) <= 150, count


def test_distinct_subjects_leave_the_window(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter(
        signals=SignalConfig(distinct_window_seconds=1, distinct_buckets=1, rate_window_seconds=1)
    )
    limiter.charge([], Exposure(subjects=frozenset({"a", "b"})), keys=KEYS)
    assert limiter.read(KEYS).signals["distinct_subjects_second"] == 2
    deadline = time.monotonic() + 5
    while limiter.read(KEYS).signals["distinct_subjects_second"]:
        assert time.monotonic() < deadline, "distinct subjects never left the window"
        time.sleep(0.1)


# -- round trips on a real Redis --------------------------------------------


def test_one_round_trip_per_phase(redis_server: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Round trips are counted on the client's socket writes (every request
    redis-py sends goes through ``send_packed_command``) and cross-checked on
    the server: one ``EVALSHA`` per phase, whatever the number of counters."""
    import redis
    from redis.connection import AbstractConnection

    sent: list[int] = []
    original = AbstractConnection.send_packed_command

    def counting(self: AbstractConnection, command: object, check_health: bool = True) -> None:
        sent.append(1)
        original(self, command, check_health)  # type: ignore[arg-type]

    url = redis_server.url  # type: ignore[attr-defined]
    limiter = Limiter.from_url(url, quotas=CATALOGUE)
    limiter.reset()
    probe = redis.Redis.from_url(url)
    charges = [
        charge(q, s, k, 1000)
        for q in ("records_day", "cost_hour")
        for s, k in (
            ("subject", "u7"),
            ("app", "partner-x"),
            ("ip", "203.0.113.9"),
            ("prefix", "203.0.113.0/24"),
        )
    ]
    exposure = Exposure(records=3, subjects=frozenset({"a", "b"}), cost=9, probed_ids=("5",))
    limiter.read(KEYS)  # connects and loads the script once
    reservation = None
    for phase in ("read", "charge", "admit", "settle"):
        probe.config_resetstat()
        monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
        sent.clear()
        if phase == "read":
            limiter.read(KEYS)
        elif phase == "charge":
            limiter.charge(charges, exposure, keys=KEYS)
        elif phase == "admit":
            reservation = limiter.admit(charges, exposure)
        else:
            assert reservation is not None
            limiter.settle(reservation, exposure, keys=KEYS)
        monkeypatch.undo()
        assert len(sent) == 1, phase
        calls = redis_calls(probe)
        assert calls.get("evalsha") == 1 and "eval" not in calls and "script" not in calls
    probe.close()
    limiter.close()
