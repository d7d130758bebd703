"""The guarded executor: untouched definitions for fields with nothing to do,
substituted ones for the rest, per-object tables, and no way around it."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from graphql import GraphQLError, GraphQLObjectType, default_field_resolver, execute, parse

from fieldguard.demo.context import DemoContext, caller_of
from fieldguard.demo.data import Store
from fieldguard.demo.sdl_schema import build_sdl_schema
from fieldguard.guard import Guard
from fieldguard.plugins.gql.executor import GuardedExecutor, SchemaView, guarded_executor_class
from fieldguard.plugins.graphql_core import GraphQLGuard
from tests.plugins.conftest import ANON, OTHER, SUPPORT, USER, caller

USERS = ("{ users(first: 12) { id handle email phone"
         " posts(first: 2) { id location author { id email } } } }")


def _prepared(guard: Guard, store: Store, who: Any, query: str = USERS) -> Any:
    gg = GraphQLGuard(guard, build_sdl_schema(), caller=caller_of)
    prepared = gg.prepare(query, context_value=DemoContext(who, store))
    assert not hasattr(prepared, "errors"), prepared
    return gg, prepared[0]


def test_allowed_public_fields_keep_their_own_definition(guard: Guard, store: Store) -> None:
    gg, run = _prepared(guard, store, caller(USER))
    user = gg.schema.type_map["User"]
    assert isinstance(user, GraphQLObjectType)
    view = run.enforcer.bind(gg.schema, default_field_resolver)
    assert isinstance(view, SchemaView)
    assert view.get_field(user, "handle") is user.fields["handle"]  # nothing to do
    checked = view.get_field(user, "email")  # decided per object: substituted
    assert checked is not None and checked is not user.fields["email"]
    assert checked.resolve is not user.fields["email"].resolve
    assert view.get_field(user, "__typename") is not None


def test_an_objects_verdict_table_releases_allowed_values_untouched(
        guard: Guard, store: Store) -> None:
    gg, run = _prepared(guard, store, caller(USER))
    user_type = gg.schema.type_map["User"]
    run.enforcer.bind(gg.schema, default_field_resolver)
    me = store.user("u2")  # the caller: every field of its own profile is allowed
    run.session.verdicts("User", [me])
    table = run.enforcer.table_for(user_type, me, {})
    assert table.verdict is not None and table.verdict.visible
    assert table.build("email") is user_type.fields["email"]  # own data: no work
    assert "email" in table.personal  # ...but counted for the audit, per object


def test_the_schema_is_never_changed(guard: Guard, store: Store) -> None:
    schema = build_sdl_schema()
    before = {(t.name, n): f.resolve for t in schema.type_map.values()
              if isinstance(t, GraphQLObjectType) for n, f in t.fields.items()}
    gg = GraphQLGuard(guard, schema, caller=caller_of)
    result = gg.execute_sync(USERS, context_value=DemoContext(caller(ANON), store))
    assert result.data is not None
    after = {(t.name, n): f.resolve for t in schema.type_map.values()
             if isinstance(t, GraphQLObjectType) for n, f in t.fields.items()}
    assert after == before


def test_an_executor_without_a_plan_releases_nothing(store: Store) -> None:
    schema = build_sdl_schema()
    result = execute(schema, parse("{ users(first: 3) { id handle } }"),
                     context_value=DemoContext(caller(USER), store),
                     executor_class=guarded_executor_class(None))
    assert not inspect.isawaitable(result)
    assert result.data is None
    assert result.errors and result.errors[0].extensions["code"] == "POLICY_UNDEFINED"


def test_guarded_executor_classes_extend_the_base_once() -> None:
    from graphql.execution.incremental.incremental_executor import IncrementalExecutor

    guarded = guarded_executor_class(IncrementalExecutor)
    assert issubclass(guarded, GuardedExecutor) and issubclass(guarded, IncrementalExecutor)
    assert guarded_executor_class(IncrementalExecutor) is guarded
    assert guarded_executor_class(guarded) is guarded


def _async_schema() -> Any:
    """The demo schema with every User/Post/Comment field resolved
    asynchronously: execution of many objects interleaves on the loop."""
    schema = build_sdl_schema()
    for name in ("User", "Post", "Comment"):
        for field in schema.type_map[name].fields.values():  # type: ignore[union-attr]
            own = field.resolve or default_field_resolver

            async def resolve(obj: Any, info: Any, _own: Any = own, **args: Any) -> Any:
                await asyncio.sleep(0)
                return _own(obj, info, **args)

            field.resolve = resolve
    return schema


def _outcome(result: Any) -> tuple[Any, list[tuple[str, Any]]]:
    errors = sorted((e.extensions["coordinate"], sorted(map(str, e.extensions["paths"])))
                    for e in result.errors or [])
    return result.data, errors


def test_interleaved_async_objects_keep_their_own_verdicts(guard: Guard,
                                                          store: Store) -> None:
    """Tables are switched per object; with every field awaiting, objects of
    different verdicts and callers interleave, and each still gets its own."""
    sync = GraphQLGuard(guard, build_sdl_schema(), caller=caller_of)
    callers = [caller(ANON), caller(USER), caller(OTHER), caller(SUPPORT)]
    expected = [_outcome(sync.execute_sync(USERS, context_value=DemoContext(c, store)))
                for c in callers]
    assert len({repr(e) for e in expected}) == len(callers)  # the callers see different data
    concurrent = GraphQLGuard(guard, _async_schema(), caller=caller_of)

    async def run_all() -> list[Any]:
        return await asyncio.gather(*[
            concurrent.execute(USERS, context_value=DemoContext(c, store))
            for c in callers * 3])

    results = asyncio.run(run_all())
    assert [_outcome(r) for r in results] == expected * 3


def test_an_undecided_object_is_decided_when_executed_and_a_failure_refuses(
        shipped: Any, store: Store) -> None:
    """An object that reaches execution without a batch decision (no list
    filtered it) is decided on the spot; if that fails, every field of it
    raises the failure instead of releasing anything."""
    from tests.plugins.test_graphql_core import FailingEngine

    for engine, expect in ((None, "decided"), (FailingEngine(shipped), "refused")):
        guard = Guard(engine, policy=shipped) if engine else Guard(policy=shipped)
        gg, run = _prepared(guard, store, caller(OTHER))
        user_type = gg.schema.type_map["User"]
        run.enforcer.bind(gg.schema, default_field_resolver)
        stranger = store.user("u6")
        table = run.enforcer.table_for(user_type, stranger, {})
        if expect == "decided":
            assert table.verdict is not None and table.verdict.visible
            assert table.build("handle") is user_type.fields["handle"]
        else:
            field = table.fields["handle"]
            with pytest.raises(GraphQLError) as err:
                field.resolve(stranger, None)
            assert err.value.extensions["code"] == "POLICY_UNAVAILABLE"
            # one table per type and request, however many objects fail
            assert run.enforcer.table_for(user_type, store.user("u7"), {}) is table
