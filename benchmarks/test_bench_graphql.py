"""What enforcement costs on a list: 1,000 users x 8 fields, 4 of them
classified and object-checked by each user's privacy settings.

Groups (one per integration, so pytest-benchmark compares inside each):

* ``strawberry``: unguarded; guarded (``StrawberryGuard``, default
  configuration: the verdict cache answers the repeated page's objects
  decision, one engine call per request); guarded without the verdict cache
  (two engine calls per request: the cost for a caller's first page);
  guarded as a support agent (masks, no denials); naive per-field regorus.
* ``graphql-core``: unguarded (parse + validate + execute, what
  ``graphql_sync`` does) vs guarded (``GraphQLGuard.execute_sync``, which
  does the same parse and validate), with and without the verdict cache.
* ``strawberry-opa-http``: the same through OPA's REST API (fixture server,
  OPA's own engine): guarded at 1,000 and 50 users, naive at 50 users.

The naive baseline is a strawberry ``SchemaExtension.resolve`` that asks
``data.fieldguard.plan`` of the same engine instance (same policy) once per
field of every object. It is a *lower bound* of a naive guard: it skips the
objects decision a ``check`` field needs (an equivalent naive guard would
pay a second call per classified field) and it drops no invisible object.

Ratios are printed at the end of the run (benchmarks/conftest.py); nothing
here asserts a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import CALLER, HTTP_USERS, SUPPORT_CALLER, USERS, Results, users_query
from graphql import ExecutionResult, GraphQLError, execute, parse, validate

from fieldguard.demo.context import DemoContext, caller_of
from fieldguard.demo.data import Store
from fieldguard.demo.sdl_schema import build_sdl_schema
from fieldguard.demo.strawberry_schema import World, build_schema
from fieldguard.guard import Guard
from fieldguard.plugins.graphql_core import GraphQLGuard
from fieldguard.plugins.strawberry import StrawberryGuard
from fieldguard.policies.contract import PLAN_PATH

CLASSIFIED = ("email", "phone", "birthday", "location")
NAIVE_ROUNDS = 3  # a naive regorus request over 1,000 users takes seconds


# -- the naive baseline -------------------------------------------------------------


def naive_extension(guard: Guard) -> type[Any]:
    """A per-field hook that asks the plan for every field of every object."""
    from strawberry.extensions import SchemaExtension

    engine = guard.engine

    class NaivePerField(SchemaExtension):
        calls = 0  # engine calls of the last request (class-level, for the check)

        def __init__(self, *, execution_context: Any = None) -> None:
            super().__init__(execution_context=execution_context)
            self.base: dict[str, Any] | None = None
            type(self).calls = 0

        def _base(self) -> dict[str, Any]:
            if self.base is None:
                caller = caller_of(self.execution_context.context)
                doc = caller.as_input()
                doc["operation"] = {"protocol": "graphql", "type": "query",
                                    "name": None, "introspection": False, "complexity": {}}
                doc["usage"], doc["signals"] = {}, {}
                self.base = doc
            return self.base

        def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
            coord = f"{info.parent_type.name}.{info.field_name}"
            tags = list(guard.classification().tags_for(coord))
            doc = {**self._base(),
                   "fields": [{"coordinate": coord, "tags": tags, "count": 1}]}
            decision = engine.evaluate(PLAN_PATH, doc)
            type(self).calls += 1
            plan = decision.require()
            effect = (plan.get("fields") or {}).get(coord) or {}
            kind = effect.get("effect", "deny") if plan.get("allow") else "deny"
            if kind == "deny":
                raise GraphQLError(f"Not allowed to read {coord}",
                                   extensions={"code": "FORBIDDEN", "coordinate": coord})
            value = _next(root, info, *args, **kwargs)
            if kind == "mask" and value is not None:
                value = guard.maskers.apply(effect.get("mask") or "redact", value)
            return value  # `check` released as is: see the module docstring

    return NaivePerField


# -- helpers ----------------------------------------------------------------------


def last_engine_calls(guard: Guard) -> int:
    sink = guard.audit
    assert sink is not None
    records = sink.records  # type: ignore[attr-defined]
    assert records, "the guarded run wrote no audit event"
    return int(records[-1].metrics["engine_calls"])


def check_guarded(result: ExecutionResult, n: int) -> list[dict[str, Any]]:
    """The privacy settings took effect: invisible users dropped, classified
    values withheld (null + FORBIDDEN) for some users, public ones intact."""
    assert result.data is not None, result.errors
    users = result.data["users"]
    assert 0 < len(users) < n  # suspended and private profiles are dropped
    assert all(u["handle"] and u["id"] for u in users)
    assert any(u["phone"] is None for u in users)
    assert any(u["phone"] is not None for u in users)
    assert result.errors and all(
        (e.extensions or {}).get("code") == "FORBIDDEN" for e in result.errors)
    return users  # type: ignore[no-any-return]


def check_unguarded(result: ExecutionResult, n: int) -> None:
    assert result.errors is None, result.errors
    assert result.data is not None and len(result.data["users"]) == n


def strawberry_runner(schema: Any, world: World, n: int, caller: Any = CALLER
                      ) -> Callable[[], ExecutionResult]:
    query, ctx = users_query(n), DemoContext(caller, world)
    return lambda: schema.execute_sync(query, context_value=ctx)


# -- strawberry ---------------------------------------------------------------------


@pytest.mark.benchmark(group="strawberry", min_rounds=10)
def test_strawberry_unguarded(benchmark: Any, worlds: Callable[[int], World],
                              results: Results) -> None:
    run = strawberry_runner(build_schema(), worlds(USERS), USERS)
    check_unguarded(benchmark(run), USERS)
    results.record("strawberry-unguarded", benchmark, objects=USERS)


@pytest.mark.benchmark(group="strawberry", min_rounds=10)
def test_strawberry_guarded(benchmark: Any, worlds: Callable[[int], World],
                            regorus_guard: Guard, results: Results) -> None:
    schema = build_schema([StrawberryGuard(regorus_guard, caller=caller_of).extension])
    result = benchmark(strawberry_runner(schema, worlds(USERS), USERS))
    check_guarded(result, USERS)
    calls = last_engine_calls(regorus_guard)
    assert calls <= 3  # one plan + one objects batch; does not grow with the list
    results.record("strawberry-guarded", benchmark, objects=USERS, engine_calls=calls)


@pytest.mark.benchmark(group="strawberry", min_rounds=10)
def test_strawberry_guarded_uncached(benchmark: Any, worlds: Callable[[int], World],
                                     regorus_guard_uncached: Guard, results: Results) -> None:
    guard = regorus_guard_uncached
    schema = build_schema([StrawberryGuard(guard, caller=caller_of).extension])
    check_guarded(benchmark(strawberry_runner(schema, worlds(USERS), USERS)), USERS)
    calls = last_engine_calls(guard)
    assert calls == 2  # the plan, and one objects batch for every shape on the page
    results.record("strawberry-guarded-uncached", benchmark, objects=USERS, engine_calls=calls)


@pytest.mark.benchmark(group="strawberry", min_rounds=10)
def test_strawberry_guarded_support(benchmark: Any, worlds: Callable[[int], World],
                                    regorus_guard: Guard, results: Results) -> None:
    """Every user visible, contact data masked, no denial: the enforcement
    machinery without GraphQL errors."""
    schema = build_schema([StrawberryGuard(regorus_guard, caller=caller_of).extension])
    result = benchmark(strawberry_runner(schema, worlds(USERS), USERS, SUPPORT_CALLER))
    assert result.errors is None, result.errors[:3]
    users = result.data["users"]  # type: ignore[index]
    assert len(users) == USERS
    assert all("***" in u["email"] for u in users)  # masked (email masker)
    calls = last_engine_calls(regorus_guard)
    assert calls <= 3
    results.record("strawberry-guarded-support", benchmark, objects=USERS, engine_calls=calls)


@pytest.mark.benchmark(group="strawberry", min_rounds=10)
def test_strawberry_naive_regorus(benchmark: Any, worlds: Callable[[int], World],
                                  regorus_guard: Guard, results: Results) -> None:
    ext = naive_extension(regorus_guard)
    run = strawberry_runner(build_schema([ext]), worlds(USERS), USERS)
    result = benchmark.pedantic(run, rounds=NAIVE_ROUNDS, iterations=1)
    assert result.data is not None and len(result.data["users"]) == USERS
    assert ext.calls == 1 + USERS * 8  # Query.users + 8 fields per user
    results.record("strawberry-naive-regorus", benchmark, objects=USERS,
                   engine_calls=ext.calls)


# -- graphql-core -------------------------------------------------------------------


@pytest.mark.benchmark(group="graphql-core", min_rounds=10)
def test_graphql_core_unguarded(benchmark: Any, stores: Callable[[int], Store],
                                results: Results) -> None:
    schema, query = build_sdl_schema(), users_query(USERS)
    ctx = DemoContext(CALLER, stores(USERS))

    def run() -> Any:
        document = parse(query)
        errors = validate(schema, document)
        assert not errors
        return execute(schema, document, context_value=ctx)

    check_unguarded(benchmark(run), USERS)
    results.record("graphql-core-unguarded", benchmark, objects=USERS)


def _graphql_core_guarded(benchmark: Any, store: Store, guard: Guard, caller: Any) -> Any:
    gg = GraphQLGuard(guard, build_sdl_schema(), caller=caller_of)
    query, ctx = users_query(USERS), DemoContext(caller, store)
    return benchmark(lambda: gg.execute_sync(query, context_value=ctx))


@pytest.mark.benchmark(group="graphql-core", min_rounds=10)
def test_graphql_core_guarded(benchmark: Any, stores: Callable[[int], Store],
                              regorus_guard: Guard, results: Results) -> None:
    result = _graphql_core_guarded(benchmark, stores(USERS), regorus_guard, CALLER)
    check_guarded(result, USERS)
    calls = last_engine_calls(regorus_guard)
    assert calls <= 3
    results.record("graphql-core-guarded", benchmark, objects=USERS, engine_calls=calls)


@pytest.mark.benchmark(group="graphql-core", min_rounds=10)
def test_graphql_core_guarded_uncached(benchmark: Any, stores: Callable[[int], Store],
                                       regorus_guard_uncached: Guard, results: Results) -> None:
    guard = regorus_guard_uncached
    check_guarded(_graphql_core_guarded(benchmark, stores(USERS), guard, CALLER), USERS)
    calls = last_engine_calls(guard)
    assert calls == 2
    results.record("graphql-core-guarded-uncached", benchmark, objects=USERS, engine_calls=calls)


@pytest.mark.benchmark(group="graphql-core", min_rounds=10)
def test_graphql_core_guarded_support(benchmark: Any, stores: Callable[[int], Store],
                                      regorus_guard: Guard, results: Results) -> None:
    result = _graphql_core_guarded(benchmark, stores(USERS), regorus_guard, SUPPORT_CALLER)
    assert result.errors is None, result.errors[:3]
    assert len(result.data["users"]) == USERS
    calls = last_engine_calls(regorus_guard)
    assert calls <= 3
    results.record("graphql-core-guarded-support", benchmark, objects=USERS,
                   engine_calls=calls)


def test_integrations_agree(worlds: Callable[[int], World], stores: Callable[[int], Store],
                            regorus_guard: Guard) -> None:
    """Both guarded integrations release exactly the same values."""
    sb = build_schema([StrawberryGuard(regorus_guard, caller=caller_of).extension])
    a = strawberry_runner(sb, worlds(USERS), USERS)()
    gg = GraphQLGuard(regorus_guard, build_sdl_schema(), caller=caller_of)
    b = gg.execute_sync(users_query(USERS), context_value=DemoContext(CALLER, stores(USERS)))
    assert check_guarded(a, USERS) == check_guarded(b, USERS)
    assert len(a.errors or []) == len(b.errors or [])


# -- over OPA's REST API ------------------------------------------------------------


@pytest.mark.benchmark(group="strawberry-opa-http", min_rounds=10)
@pytest.mark.parametrize("n", [USERS, HTTP_USERS])
def test_strawberry_guarded_opa_http(benchmark: Any, n: int, worlds: Callable[[int], World],
                                     opa_http_guard: Guard, results: Results) -> None:
    schema = build_schema([StrawberryGuard(opa_http_guard, caller=caller_of).extension])
    result = benchmark(strawberry_runner(schema, worlds(n), n))
    check_guarded(result, n)
    calls = last_engine_calls(opa_http_guard)
    assert calls <= 3
    name = "strawberry-guarded-opa-http" + ("" if n == USERS else f"-{n}")
    results.record(name, benchmark, objects=n, engine_calls=calls)


@pytest.mark.benchmark(group="strawberry-opa-http", min_rounds=10)
def test_strawberry_naive_opa_http(benchmark: Any, worlds: Callable[[int], World],
                                   opa_http_guard: Guard, results: Results) -> None:
    ext = naive_extension(opa_http_guard)
    run = strawberry_runner(build_schema([ext]), worlds(HTTP_USERS), HTTP_USERS)
    result = benchmark.pedantic(run, rounds=NAIVE_ROUNDS, iterations=1, warmup_rounds=1)
    assert result.errors is None, result.errors[:3]
    assert result.data is not None and len(result.data["users"]) == HTTP_USERS
    assert ext.calls == 1 + HTTP_USERS * 8
    results.record(f"strawberry-naive-opa-http-{HTTP_USERS}", benchmark, objects=HTTP_USERS,
                   engine_calls=ext.calls)
