"""Async execution does not stall the event loop: the plan, the quota round
trips and the audit write are awaited (GraphQLGuard.execute and strawberry's
async extension), so other requests run while a slow policy evaluates.

The slow policy runs on OPA's Go engine with ``offload``: its evaluation
releases the GIL. regorus holds the GIL while it evaluates, so on the
default engine the loop still waits for the (~1 ms) evaluation itself; what
the async path frees there is the quota and audit I/O."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fieldguard.audit import MemorySink
from fieldguard.demo.context import DemoContext, caller_of
from fieldguard.demo.data import Store
from fieldguard.demo.sdl_schema import build_sdl_schema
from fieldguard.demo.strawberry_schema import World, build_schema
from fieldguard.guard import Guard
from fieldguard.plugins.graphql_core import GraphQLGuard
from fieldguard.plugins.strawberry import StrawberryGuard
from fieldguard.policies.opa_embedded import OpaEmbeddedEngine
from fieldguard.policies.source import PolicySet
from tests.plugins.conftest import USER, caller

#: A plan that allows everything after a deliberately slow computation (a
#: comprehension over 300,000 numbers: tens of milliseconds).
SLOW_PLAN = """package fieldguard
work := count([x | some x in numbers.range(1, 300000); x % 7 == 0])
plan := {"allow": work > 0, "outcome": "allow", "status": 200,
         "fields": {f.coordinate: {"effect": "allow"} | some f in input.fields}}
"""
QUERY = "{ users(first: 3) { id handle } }"


def ticks_while(request: Callable[[], Awaitable[Any]]) -> tuple[Any, int]:
    """Run ``request`` beside a task that counts its turns on the loop."""

    async def main() -> tuple[Any, int]:
        turns = 0
        done = False

        async def ticker() -> None:
            nonlocal turns
            while not done:
                turns += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        start = turns
        result = await request()
        during = turns - start
        done = True
        await task
        return result, during

    return asyncio.run(main())


@pytest.fixture
def slow_guard() -> Guard:
    policy = PolicySet.from_sources([("slow.rego", SLOW_PLAN)])
    return Guard(OpaEmbeddedEngine(policy, offload=True), audit=MemorySink())


def test_graphql_core_execute_awaits_the_plan(slow_guard: Guard, store: Store) -> None:
    gg = GraphQLGuard(slow_guard, build_sdl_schema(), caller=caller_of)
    result, turns = ticks_while(
        lambda: gg.execute(QUERY, context_value=DemoContext(caller(USER), store)))
    assert result.errors is None and len(result.data["users"]) == 3
    assert turns >= 1000, turns  # the loop kept running while the policy evaluated


def test_strawberry_async_extension_awaits_the_plan(slow_guard: Guard, store: Store) -> None:
    fg = StrawberryGuard(slow_guard, caller=caller_of)
    schema = build_schema([fg.async_extension])
    result, turns = ticks_while(
        lambda: schema.execute(QUERY, context_value=DemoContext(caller(USER), World(store))))
    assert result.errors is None and len(result.data["users"]) == 3
    assert turns >= 1000, turns


def test_the_sync_extension_blocks_the_loop_for_the_plan(slow_guard: Guard,
                                                        store: Store) -> None:
    """Why the async extension exists: the sync one evaluates on the loop."""
    fg = StrawberryGuard(slow_guard, caller=caller_of)
    schema = build_schema([fg.extension])
    result, turns = ticks_while(
        lambda: schema.execute(QUERY, context_value=DemoContext(caller(USER), World(store))))
    assert result.errors is None
    assert turns < 50, turns


def test_the_async_extension_under_execute_sync_releases_nothing(guard: Guard,
                                                                 store: Store) -> None:
    schema = build_schema([StrawberryGuard(guard, caller=caller_of).async_extension])
    result = schema.execute_sync("{ users(first: 3) { id email } }",
                                 context_value=DemoContext(caller(USER), World(store)))
    assert result.data is None and result.errors  # strawberry refuses async hooks here
