"""graphql-core integration: engine-call count, fail closed, concurrency,
async execution and subscriptions."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from fieldguard.audit import MemorySink
from fieldguard.context import Subject
from fieldguard.demo.context import DemoContext, caller_of
from fieldguard.demo.data import Store
from fieldguard.demo.sdl_schema import build_sdl_schema
from fieldguard.errors import ConfigurationError, StorageError
from fieldguard.guard import Guard
from fieldguard.plugins.graphql_core import GraphQLGuard
from fieldguard.policies.decision import Decision
from fieldguard.policies.regorus_engine import RegorusEngine
from fieldguard.policies.source import PolicySet
from tests.plugins.conftest import ANON, OTHER, USER, caller, with_caps

Q = "{ users(first: %d) { id handle email phone birthday location } }"


@pytest.mark.parametrize("size", [10, 100, 1000, 10000])
def test_engine_calls_do_not_grow_with_the_response(shipped: PolicySet, size: int) -> None:
    sink = MemorySink()
    guard = Guard(policy=with_caps(shipped, max_page_size=20000, max_cost=10**9), audit=sink)
    gg = GraphQLGuard(guard, build_sdl_schema(), caller=caller_of)
    store = Store.generate(users=size, posts_per_user=0)
    result = gg.execute_sync(Q % size, context_value=DemoContext(caller(OTHER), store))
    assert result.data is not None and len(result.data["users"]) >= size * 0.7
    metrics = sink.records[-1].metrics
    # one plan + one objects batch for the whole list
    assert metrics["engine_calls"] == 2
    # shapes, not objects: 3 privacy profiles x 2 consents x 3 visibilities,
    # plus the caller's own profile, whatever the size
    assert metrics["objects_evaluated"] <= 3 * 2 * 3 + 1


def test_nested_lists_reuse_shapes(shipped: PolicySet) -> None:
    sink = MemorySink()
    # no verdict cache: this is about the per-request memo
    guard = Guard(policy=with_caps(shipped, max_page_size=20000, max_cost=10**9), audit=sink,
                  verdict_cache=0)
    gg = GraphQLGuard(guard, build_sdl_schema(), caller=caller_of)
    calls = []
    for size in (20, 400):
        store = Store.generate(users=size)
        q = f"{{ users(first: {size}) {{ id posts {{ location author {{ email }} }} }} }}"
        gg.execute_sync(q, context_value=DemoContext(caller(OTHER), store))
        calls.append(sink.records[-1].metrics["engine_calls"])
    # depth-first execution meets new shapes in the first few users' posts;
    # after that every shape is memoised, so the count stops growing
    assert calls[0] == calls[1]
    assert calls[1] <= 1 + 2 * (3 * 2 * 3 + 1)


class FailingEngine(RegorusEngine):
    """A real engine whose objects decision is unavailable."""

    def evaluate(self, path: str, input: Any, *, decision_id: str | None = None) -> Decision:
        if path == "fieldguard.objects":
            return Decision.unavailable(path, "connection refused", engine=self.name)
        return super().evaluate(path, input, decision_id=decision_id)


def _gg(guard: Guard) -> GraphQLGuard:
    return GraphQLGuard(guard, build_sdl_schema(), caller=caller_of)


def test_objects_decision_unavailable_releases_nothing(shipped: PolicySet, store: Store) -> None:
    guard = Guard(FailingEngine(shipped))
    result = _gg(guard).execute_sync("{ users(first: 5) { id email } }",
                                     context_value=DemoContext(caller(USER), store))
    assert result.data == {"users": None} or result.data is None
    codes = {e.extensions["code"] for e in result.errors}
    assert codes == {"POLICY_UNAVAILABLE"}
    assert "connection refused" not in repr(result.errors)


@pytest.mark.parametrize(("rego", "code"), [
    ("package fieldguard\nplan := x if { x := 1; false }\n", "POLICY_UNDEFINED"),
    ("package fieldguard\nplan := {\"allow\": \"yes\", \"outcome\": 7}\n", "POLICY_MALFORMED"),
    # two complete definitions with different values: a runtime conflict error
    ("package fieldguard\nplan := 1 if input.subject\nplan := 2 if input.client\n",
     "POLICY_UNAVAILABLE"),
])
def test_plan_failures_fail_closed(store: Store, rego: str, code: str) -> None:
    sink = MemorySink()
    guard = Guard(policy=PolicySet.from_sources([("p.rego", rego)]), audit=sink)
    result = _gg(guard).execute_sync("{ users(first: 2) { id } }",
                                     context_value=DemoContext(caller(USER), store))
    assert result.data is None
    assert [e.extensions["code"] for e in result.errors] == [code]
    assert sink.records and sink.records[-1].errors == [code]


class BrokenSink:
    def emit(self, event: Any) -> None:
        raise StorageError("disk full", backend="file")


def test_audit_failure_drops_the_data(shipped: PolicySet, store: Store) -> None:
    guard = Guard(policy=shipped, audit=BrokenSink())
    result = _gg(guard).execute_sync("{ users(first: 2) { id email } }",
                                     context_value=DemoContext(caller(USER), store))
    assert result.data is None
    assert [e.extensions["code"] for e in result.errors] == ["STORAGE_UNAVAILABLE"]


def test_audit_record_says_what_left(guard: Guard, sink: MemorySink, store: Store) -> None:
    _gg(guard).execute_sync("{ users(first: 6) { id email moderationNotes } }",
                            context_value=DemoContext(caller(OTHER), store))
    event = sink.records[-1].as_dict()
    assert event["path"] == "fieldguard.plan"
    assert event["bundles"]["fieldguard"]["revision"] == guard.engine.revision
    exposure = event["exposure"]
    assert exposure["released"]["User.email"] == 4        # u1, u2, u4 + the caller u5
    assert exposure["withheld"]["User.moderationNotes"] == 5
    assert "u1" in exposure["subjects"] and "u6" not in exposure["subjects"]
    assert exposure["hidden"] == 1                          # u3 is private
    assert event["input"]["subject"]["id"] == "u5"
    assert "user1@example.org" not in repr(event)           # no data values in the log


def test_caller_function_is_checked(guard: Guard) -> None:
    with pytest.raises(ConfigurationError):
        GraphQLGuard(guard, build_sdl_schema(), caller="nope")  # type: ignore[arg-type]
    gg = GraphQLGuard(guard, build_sdl_schema(), caller=lambda ctx: "not a caller")
    result = gg.execute_sync("{ me { id } }", context_value=None)
    assert result.data is None and result.errors[0].extensions["code"] == "CONFIGURATION_ERROR"


def test_token_and_depth_bombs_are_refused(guard: Guard, store: Store) -> None:
    gg = _gg(guard)
    ctx = DemoContext(caller(USER), store)
    tokens = "{ " + " ".join(f"a{i}: me {{ id }}" for i in range(800)) + " }"
    r = gg.execute_sync(tokens, context_value=ctx)
    assert r.data is None and r.errors[0].extensions["code"] == "GRAPHQL_PARSE_FAILED"
    deep = "{ users { " + "posts { author { " * 6 + "id" + " } }" * 6 + " } }"
    r = gg.execute_sync(deep, context_value=ctx)
    assert r.data is None
    assert "query.depth" in {x["code"] for x in r.errors[0].extensions["reasons"]}
    deeper = "{ users { " + "posts { author { " * 40 + "id" + " } }" * 40 + " } }"
    r = gg.execute_sync(deeper, context_value=ctx)  # beyond the analysis' hard cap
    assert r.data is None and r.errors[0].extensions["code"] == "BAD_REQUEST"


def test_alias_bomb_through_fragments_is_counted_after_expansion(guard: Guard,
                                                                 store: Store) -> None:
    frags = "fragment F0 on User { a: id b: id }\n" + "\n".join(
        f"fragment F{i} on User {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, 12))
    q = "{ me { ...F11 } }\n" + frags
    r = _gg(guard).execute_sync(q, context_value=DemoContext(caller(USER), store))
    assert r.data is None
    assert "query.aliases" in {x["code"] for x in r.errors[0].extensions["reasons"]}


def test_concurrent_subjects_never_see_each_other(guard: Guard, store: Store) -> None:
    gg = _gg(guard)
    subjects = [Subject(f"u{n}", account_age_days=400) for n in (1, 2, 4, 5, 6, 8)]
    barrier = threading.Barrier(6)

    def one(subject: Subject) -> list[tuple[str, Any]]:
        barrier.wait()
        seen = []
        for _ in range(15):
            r = gg.execute_sync("{ me { id phone } }",
                                context_value=DemoContext(caller(subject), store))
            seen.append((subject.id, r.data["me"]))
        return seen

    with ThreadPoolExecutor(6) as pool:
        results = [item for chunk in pool.map(one, subjects) for item in chunk]
    for subject_id, me in results:
        assert me["id"] == subject_id
        assert me["phone"].endswith(f"{int(subject_id[1:]):04d}")


def test_async_execution(guard: Guard, store: Store) -> None:
    gg = _gg(guard)
    r = asyncio.run(gg.execute("{ usersAsync(first: 6) { id email } }",
                               context_value=DemoContext(caller(OTHER), store)))
    emails = {u["id"]: u["email"] for u in r.data["usersAsync"]}
    assert emails["u6"] is None and emails["u2"] == "user2@example.org"
    assert "u3" not in emails


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
def test_async_resolver_under_execute_sync_is_an_error_not_a_crash(guard: Guard,
                                                                   store: Store) -> None:
    r = _gg(guard).execute_sync("{ usersAsync { id } }",
                                context_value=DemoContext(caller(USER), store))
    assert r.data is None and r.errors


def test_subscription_events_are_guarded(guard: Guard, sink: MemorySink, store: Store) -> None:
    gg = _gg(guard)

    async def collect() -> list[Any]:
        stream = await gg.subscribe("subscription { profiles(first: 4) { id email } }",
                                    context_value=DemoContext(caller(ANON), store))
        return [event async for event in stream]  # type: ignore[union-attr]

    events = asyncio.run(collect())
    assert [e.data["profiles"] and e.data["profiles"]["id"] for e in events] == \
        ["u1", "u2", None, "u4"]  # u3's profile is private: its event carries null
    for event in events:
        if event.data["profiles"]:
            assert event.data["profiles"]["email"] is None
            assert event.errors[0].extensions["code"] == "FORBIDDEN"
    assert sink.records[-1].exposure["withheld"]["User.email"] == 3


def test_record_quota_is_exact_not_within_a_page(shipped: PolicySet, store: Store) -> None:
    from fieldguard.limits import Limiter

    limiter = Limiter.from_url("memory://", quotas=shipped.policy_data["limits"])
    sink = MemorySink()
    guard = Guard(policy=shipped, audit=sink, limiter=limiter)
    gg = _gg(guard)
    big = Store.generate(users=700, posts_per_user=0)
    received, after, codes = 0, None, []
    for _ in range(12):  # 600/day standard quota, pages of 100
        cursor = f', after: "{after}"' if after else ""
        r = gg.execute_sync(f"{{ users(first: 100{cursor}) {{ id }} }}",
                            context_value=DemoContext(caller(USER), big))
        codes = [e.extensions["code"] for e in r.errors or []]
        if r.data is None:
            break
        received += len(r.data["users"])
        if r.data["users"]:
            after = r.data["users"][-1]["id"]
    assert received == 600
    assert codes == ["RATE_LIMITED"]
    assert sum(e.exposure["records"] for e in sink.records) == 600


def test_reject_mode_fails_the_whole_request_on_an_objects_failure(shipped: PolicySet,
                                                                   store: Store) -> None:
    from fieldguard.guard import FailMode

    guard = Guard(FailingEngine(shipped), object_fail_mode=FailMode.REJECT)
    result = _gg(guard).execute_sync("{ me { id } users(first: 5) { id email } }",
                                     context_value=DemoContext(caller(USER), store))
    assert result.data is None   # not even the fields that needed no object decision
    assert [e.extensions["code"] for e in result.errors] == ["POLICY_UNAVAILABLE"]
