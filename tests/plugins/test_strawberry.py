"""strawberry integration: async execution, DataLoaders, subscriptions,
and one extension instance per request."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import strawberry
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from fieldguard.audit import MemorySink
from fieldguard.context import Caller, Client, Subject
from fieldguard.demo.context import DemoContext, caller_of
from fieldguard.demo.data import Store
from fieldguard.demo.strawberry_schema import User, World, build_schema
from fieldguard.guard import Guard
from fieldguard.plugins.strawberry import StrawberryGuard
from tests.plugins.conftest import ANON, OTHER, USER, caller


def _schema(guard: Guard) -> strawberry.Schema:
    return build_schema([StrawberryGuard(guard, caller=caller_of).extension])


def test_async_execution_and_async_resolvers(guard: Guard, store: Store) -> None:
    schema = _schema(guard)
    r = asyncio.run(schema.execute("{ usersAsync(first: 6) { id email } }",
                                   context_value=DemoContext(caller(OTHER), World(store))))
    emails = {u["id"]: u["email"] for u in r.data["usersAsync"]}
    assert emails["u6"] is None and emails["u2"] == "user2@example.org"
    assert "u3" not in emails
    assert r.errors and r.errors[0].extensions["code"] == "FORBIDDEN"


def test_refused_async_operation_runs_no_resolver(guard: Guard, store: Store) -> None:
    schema = _schema(guard)
    r = asyncio.run(schema.execute("{ users(first: 5000) { id } }",
                                   context_value=DemoContext(caller(USER), World(store))))
    assert r.data is None and r.errors[0].extensions["code"] == "BAD_REQUEST"


@strawberry.type
class LoaderQuery:
    @strawberry.field
    async def friends(self, info: Info, ids: list[str]) -> list[User | None]:
        loader: DataLoader[str, User | None] = info.context.loader
        return await loader.load_many(ids)


def test_dataloader_batches_and_is_guarded(guard: Guard, store: Store) -> None:
    world = World(store)
    batches: list[list[str]] = []

    async def load(keys: list[str]) -> list[User | None]:
        batches.append(list(keys))
        return [world.user(k) for k in keys]

    schema = strawberry.Schema(query=LoaderQuery, types=[User],
                               extensions=[StrawberryGuard(guard, caller=caller_of).extension])

    class Ctx(DemoContext):
        loader: Any

    async def run() -> Any:
        ctx = Ctx(caller(OTHER), world)
        ctx.loader = DataLoader(load_fn=load)
        return await schema.execute('{ friends(ids: ["u1", "u3", "u6"]) { id email } }',
                                    context_value=ctx)

    r = asyncio.run(run())
    assert batches == [["u1", "u3", "u6"]]       # one batch: the loader still batches
    assert [f and f["id"] for f in r.data["friends"]] == ["u1", "u6"]  # u3 private: dropped
    assert r.data["friends"][1]["email"] is None  # u6 shares email with nobody


def test_subscription_events_are_guarded(guard: Guard, sink: MemorySink,
                                        store: Store) -> None:
    schema = _schema(guard)  # a fresh schema: its first operation is a subscription

    async def run() -> list[Any]:
        stream = await schema.subscribe("subscription { profiles(first: 2) { id email } }",
                                        context_value=DemoContext(caller(ANON), World(store)))
        return [event async for event in stream]  # type: ignore[union-attr]

    events = asyncio.run(run())
    assert [e.data["profiles"]["id"] for e in events] == ["u1", "u2"]
    assert all(e.data["profiles"]["email"] is None for e in events)
    # each event carries the errors of what it withheld
    assert all([err.extensions["code"] for err in e.errors] == ["FORBIDDEN"] for e in events)
    # and the stream is audited once, when it ends
    assert len(sink.records) == 1
    assert sink.records[0].exposure["withheld"]["User.email"] == 2


def test_an_operation_run_outside_the_guarded_executor_releases_nothing(
        guard: Guard, sink: MemorySink, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import fieldguard.plugins.strawberry as plugin

    monkeypatch.setattr(plugin, "_install_executor", lambda schema: None)
    schema = _schema(guard)  # the executor is never installed: no table is ever asked
    r = schema.execute_sync("{ users(first: 3) { id email } }",
                            context_value=DemoContext(caller(USER), World(store)))
    assert r.data is None
    assert [e.extensions["code"] for e in r.errors or []] == ["POLICY_UNDEFINED"]
    assert sink.records[-1].outcome == "error"  # audited as an error, not as a release


def test_each_request_gets_its_own_extension(guard: Guard, store: Store) -> None:
    sink = MemorySink()
    guard = Guard(policy=guard.current_policy(), audit=sink)
    schema = _schema(guard)
    world = World(store)

    async def one(subject: Subject) -> Any:
        return await schema.execute("{ me { id phone } }",
                                    context_value=DemoContext(caller(subject), world))

    async def many() -> list[Any]:
        subjects = [Subject(f"u{n}", account_age_days=400) for n in (1, 2, 4, 5, 6, 8)] * 5
        return list(await asyncio.gather(*(one(s) for s in subjects)))

    results = asyncio.run(many())
    for r in results:
        me = r.data["me"]
        assert me["phone"].endswith(f"{int(me['id'][1:]):04d}")
    assert len({e.decision_id for e in sink.records}) == len(results)


def test_caller_function_must_return_a_caller(guard: Guard, store: Store) -> None:
    schema = build_schema([StrawberryGuard(guard, caller=lambda ctx: None).extension])
    r = schema.execute_sync("{ me { id } }", context_value=DemoContext(caller(USER),
                                                                       World(store)))
    assert r.data is None and r.errors[0].extensions["code"] == "CONFIGURATION_ERROR"


def test_unclassified_fields_follow_the_default_tags(guard: Guard) -> None:
    @strawberry.type
    class Q:
        secret: str = "x"

    schema = strawberry.Schema(query=Q, extensions=[StrawberryGuard(
        guard, caller=lambda ctx: Caller(Subject(None), Client("203.0.113.1"))).extension])
    # Q.secret is in no classification: the shipped default_tags ([public])
    # apply, so an anonymous caller may read it. Classify it to protect it.
    r = schema.execute_sync("{ secret }", root_value=Q())
    assert r.data == {"secret": "x"}


def test_a_custom_execution_context_class_is_extended_not_replaced(guard: Guard,
                                                                   store: Store) -> None:
    from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

    built: list[str] = []

    class Tracing(StrawberryGraphQLCoreExecutionContext):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            built.append("tracing")

    from fieldguard.demo.strawberry_schema import Comment, Query

    schema = strawberry.Schema(query=Query, types=[Comment],
                               extensions=[StrawberryGuard(guard, caller=caller_of).extension],
                               execution_context_class=Tracing)
    r = schema.execute_sync("{ users(first: 6) { id email } }",
                            context_value=DemoContext(caller(OTHER), World(store)))
    assert built == ["tracing"]  # the app's class still runs...
    assert issubclass(schema.execution_context_class, Tracing)
    emails = {u["id"]: u["email"] for u in r.data["users"]}  # ...and so does the guard
    assert emails["u2"] == "user2@example.org" and emails["u6"] is None
    assert "u3" not in emails  # a private profile: dropped
