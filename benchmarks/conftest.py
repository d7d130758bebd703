"""Shared benchmark fixtures and the same-run ratio report.

Every benchmark records its median in a session-wide :class:`Results`
(``record``); ``pytest_terminal_summary`` prints the medians and the ratios
the issue asks for (guarded / unguarded, naive / guarded, engine calls per
request), so the numbers always come from one run on one machine.

Benchmarks never assert wall-clock times, only correctness.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

from fieldguard.audit.sinks import MemorySink  # noqa: E402
from fieldguard.context import Caller, Client, Subject  # noqa: E402
from fieldguard.demo.data import Store  # noqa: E402
from fieldguard.demo.strawberry_schema import World  # noqa: E402
from fieldguard.guard import Guard  # noqa: E402
from fieldguard.plugins.strawberry import QuietDenials  # noqa: E402
from fieldguard.policies.source import PolicySet, load_policy_set  # noqa: E402

#: The list the issue measures: 1,000 users x 8 fields.
USERS = 1000
#: Per-field decisions over HTTP cost ~1 ms each: the naive HTTP run uses fewer users.
HTTP_USERS = 50
FIELDS = "id handle displayName bio email phone birthday location"


def users_query(first: int) -> str:
    """8 fields: 4 public, 4 classified (each governed by a privacy setting)."""
    return f"{{ users(first: {first}) {{ {FIELDS} }} }}"


#: Authenticated, established, verified: tier `verified`, default purpose, so
#: the plan allows and the privacy settings make the 4 classified fields `check`.
CALLER = Caller(Subject("u2", account_age_days=400, verified=True), Client("203.0.113.10"))
#: A support agent: privacy settings do not apply, contact data is masked, no
#: denials (isolates the enforcement machinery from GraphQL error production).
SUPPORT_CALLER = Caller(Subject("s1", roles=("support",), account_age_days=400, verified=True),
                        Client("203.0.113.11"), purpose="support")


# -- policy and guards ----------------------------------------------------------


def bench_policy_set(max_page_size: int = USERS) -> PolicySet:
    """The shipped policy with ONE data override: ``limits.caps.max_page_size``.

    ``policies/limits.yaml`` caps pages at 100 and no shipped tier lifts it,
    so a 1,000-item page would be refused (400, ``query.page_size``). The
    benchmark raises that cap in memory; no file is edited and every other
    rule and number is the shipped one.
    """
    shipped = load_policy_set(ROOT / "rego", ROOT / "policies")
    data = copy.deepcopy(dict(shipped.data))
    data["policy"]["limits"]["caps"]["max_page_size"] = max_page_size
    return PolicySet.from_sources([(m.path, m.text) for m in shipped.modules], data)


@pytest.fixture(scope="session")
def bench_policy() -> PolicySet:
    return bench_policy_set()


@pytest.fixture(scope="session")
def regorus_guard(bench_policy: PolicySet) -> Guard:
    """Embedded engine (regorus), audit to memory, default configuration
    (the verdict cache is on: after the first request, the objects decision
    of a repeated page comes from it and the engine is called once)."""
    return Guard(policy=bench_policy, audit=MemorySink())


@pytest.fixture(scope="session")
def regorus_guard_uncached(bench_policy: PolicySet) -> Guard:
    """As ``regorus_guard`` without the verdict cache: every request asks
    the engine for the plan and for its object shapes (two calls)."""
    return Guard(policy=bench_policy, audit=MemorySink(), verdict_cache=0)


@pytest.fixture(scope="session")
def opa_server() -> Iterator[Any]:
    """OPA's REST API with OPA's engine behind it (tests/support/opa_server.py)."""
    from tests.support.opa_server import OpaFixtureServer

    server = OpaFixtureServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def opa_http_guard(opa_server: Any, bench_policy: PolicySet) -> Iterator[Guard]:
    """``opa+http://`` engine against the fixture server; the policy is pushed."""
    guard = Guard(opa_server.engine_url, policy=bench_policy, audit=MemorySink())
    try:
        yield guard
    finally:
        guard.engine.close()


# -- data ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stores() -> Callable[[int], Store]:
    """``stores(n)``: the demo store with ``n`` users (built once per size)."""
    cache: dict[int, Store] = {}

    def get(n: int) -> Store:
        if n not in cache:
            cache[n] = Store.generate(users=n, posts_per_user=0)
        return cache[n]

    return get


@pytest.fixture(scope="session")
def worlds(stores: Callable[[int], Store]) -> Callable[[int], World]:
    """``worlds(n)``: the same store as strawberry objects (built once per size)."""
    cache: dict[int, World] = {}

    def get(n: int) -> World:
        if n not in cache:
            cache[n] = World(stores(n))
        return cache[n]

    return get


@pytest.fixture(scope="session", autouse=True)
def quiet_denials() -> Iterator[None]:
    """Install the shipped ``QuietDenials`` filter on strawberry's logger.

    Without it strawberry logs every field error (each denied value) with a
    traceback; guarded and naive runs both produce denials, so both get the
    filter, as a production deployment should.
    """
    log = logging.getLogger("strawberry.execution")
    filt = QuietDenials()
    log.addFilter(filt)
    try:
        yield
    finally:
        log.removeFilter(filt)


# -- the same-run report ---------------------------------------------------------


@dataclass
class Entry:
    median_s: float
    objects: int
    engine_calls: int | None = None
    rounds: int = 0
    min_s: float = 0.0


@dataclass
class Results:
    """Medians per benchmark name, collected during the session."""

    entries: dict[str, Entry] = field(default_factory=dict)

    def record(self, name: str, benchmark: Any, *, objects: int,
               engine_calls: int | None = None) -> None:
        """Keep ``benchmark``'s median (nothing when benchmarks are disabled)."""
        if engine_calls is not None:
            benchmark.extra_info["engine_calls_per_request"] = engine_calls
        benchmark.extra_info["objects"] = objects
        stats = getattr(benchmark, "stats", None)
        if stats is None:  # --benchmark-disable (the project's default addopts)
            return
        inner = stats.stats
        self.entries[name] = Entry(inner.median, objects, engine_calls, inner.rounds, inner.min)

    def stat(self, name: str, which: str = "median") -> float | None:
        """The median (or ``which="min"``) of ``name``, in seconds."""
        entry = self.entries.get(name)
        if entry is None:
            return None
        return entry.min_s if which == "min" else entry.median_s

    def per_object(self, name: str, which: str = "median") -> float | None:
        entry = self.entries.get(name)
        value = self.stat(name, which)
        return value / entry.objects if entry and entry.objects and value else None


_RESULTS = pytest.StashKey[Results]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RESULTS] = Results()


@pytest.fixture(scope="session")
def results(request: pytest.FixtureRequest) -> Results:
    return request.config.stash[_RESULTS]


#: (label, numerator, denominator, how): `same` compares medians of runs of
#: the same size; `per-object` compares median / objects (the naive HTTP run
#: is smaller; its cost is linear in objects, the guarded cost is not, so
#: scaling naive up is the honest direction).
RATIOS: tuple[tuple[str, str, str, str], ...] = (
    ("strawberry guarded / unguarded", "strawberry-guarded", "strawberry-unguarded", "same"),
    ("strawberry guarded (support, no denials) / unguarded", "strawberry-guarded-support",
     "strawberry-unguarded", "same"),
    ("strawberry guarded, no verdict cache / unguarded", "strawberry-guarded-uncached",
     "strawberry-unguarded", "same"),
    ("graphql-core guarded / unguarded", "graphql-core-guarded", "graphql-core-unguarded",
     "same"),
    ("graphql-core guarded, no verdict cache / unguarded", "graphql-core-guarded-uncached",
     "graphql-core-unguarded", "same"),
    ("graphql-core guarded (support, no denials) / unguarded", "graphql-core-guarded-support",
     "graphql-core-unguarded", "same"),
    ("naive regorus / guarded (strawberry)", "strawberry-naive-regorus",
     "strawberry-guarded", "same"),
    ("naive regorus / unguarded (strawberry)", "strawberry-naive-regorus",
     "strawberry-unguarded", "same"),
    (f"naive opa-http / guarded opa-http, both {HTTP_USERS} users",
     f"strawberry-naive-opa-http-{HTTP_USERS}", f"strawberry-guarded-opa-http-{HTTP_USERS}",
     "same"),
    (f"naive opa-http / guarded opa-http, per object (naive {HTTP_USERS} x{USERS // HTTP_USERS}"
     f" vs guarded {USERS})", f"strawberry-naive-opa-http-{HTTP_USERS}",
     "strawberry-guarded-opa-http", "per-object"),
    ("guarded opa-http / guarded regorus (strawberry)", "strawberry-guarded-opa-http",
     "strawberry-guarded", "same"),
)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:10.2f} ms"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    results = config.stash.get(_RESULTS, None)
    if results is None or not results.entries:
        return
    tr = terminalreporter
    tr.section("fieldguard GraphQL cost (this run)")
    tr.write_line(f"{'benchmark':44} {'median':>13} {'min':>13} {'objects':>8} {'per object':>12}"
                  f" {'engine calls':>13} {'rounds':>7}")
    for name, e in results.entries.items():
        calls = "" if e.engine_calls is None else str(e.engine_calls)
        tr.write_line(f"{name:44} {_ms(e.median_s)} {_ms(e.min_s)} {e.objects:8d} "
                      f"{e.median_s / e.objects * 1e6:9.1f} us {calls:>13} {e.rounds:7d}")
    tr.write_line("")
    tr.write_line(f"{'ratio':78}   {'median':>8}  {'min':>8}")
    for label, num, den, how in RATIOS:
        pair = []
        for which in ("median", "min"):
            if how == "per-object":
                a, b = results.per_object(num, which), results.per_object(den, which)
            else:
                a, b = results.stat(num, which), results.stat(den, which)
            pair.append(None if a is None or b is None else a / b)
        if pair[0] is None or pair[1] is None:
            continue
        tr.write_line(f"{label:78} = {pair[0]:7.2f}x  {pair[1]:7.2f}x")
