"""Fixtures for the GraphQL suites: the demo social network behind both
integrations, guarded by the shipped policies on the embedded engine."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from fieldguard.audit import MemorySink
from fieldguard.context import Caller, Client, Subject
from fieldguard.demo.context import DemoContext, caller_of
from fieldguard.demo.data import Store
from fieldguard.demo.sdl_schema import build_sdl_schema
from fieldguard.demo.strawberry_schema import World, build_schema
from fieldguard.guard import Guard
from fieldguard.plugins.graphql_core import GraphQLGuard
from fieldguard.plugins.strawberry import StrawberryGuard
from fieldguard.policies.source import PolicySet, load_policy_set

ANON = Subject(None)
USER = Subject("u2", account_age_days=400)
OTHER = Subject("u5", account_age_days=400)
SUPPORT = Subject("u9", roles=("support",), account_age_days=400)


def caller(subject: Subject, purpose: str | None = None, ip: str = "203.0.113.7",
           app: str | None = None) -> Caller:
    """A caller for ``subject`` (support staff get the support purpose)."""
    if purpose is None and "support" in subject.roles:
        purpose = "support"
    return Caller(subject, Client(ip, app=app), purpose=purpose)


def with_caps(policy: PolicySet, **caps: int) -> PolicySet:
    """The shipped policy with higher static caps (large-page tests)."""
    data = copy.deepcopy(dict(policy.data))
    data["policy"]["limits"]["caps"].update(caps)
    for tier in data["policy"]["limits"]["tiers"].values():
        tier["caps"] = {}
        tier["quotas"] = {k: 10**9 for k in tier["quotas"]}
    for scope in data["policy"]["limits"]["network_quotas"].values():
        scope.update({k: 10**9 for k in scope})
    return PolicySet.from_sources([(m.path, m.text) for m in policy.modules], data)


@dataclass
class Result:
    data: Any
    errors: list[Any]

    def codes(self) -> list[str]:
        return [(e.extensions or {}).get("code") for e in self.errors]

    def paths(self, code: str = "FORBIDDEN") -> list[list[Any]]:
        """Every path named by errors of ``code`` (aggregated errors list theirs
        in ``extensions.paths``)."""
        out: list[list[Any]] = []
        for e in self.errors:
            ext = e.extensions or {}
            if ext.get("code") == code:
                out.extend(ext.get("paths") or [list(e.path or [])])
        return out


Run = Callable[..., Result]


@pytest.fixture(scope="session")
def shipped() -> PolicySet:
    return load_policy_set("rego", "policies")


@pytest.fixture
def store() -> Store:
    return Store.generate(users=40)


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def guard(shipped: PolicySet, sink: MemorySink) -> Guard:
    return Guard(policy=shipped, audit=sink)


def make_runner(kind: str, guard: Guard, store: Store) -> Run:
    """A function running a query through one integration."""
    if kind == "graphql-core":
        gg = GraphQLGuard(guard, build_sdl_schema(), caller=caller_of)

        def run_core(query: str, who: Caller, variables: dict[str, Any] | None = None,
                     operation_name: str | None = None) -> Result:
            r = gg.execute_sync(query, context_value=DemoContext(who, store),
                                variable_values=variables, operation_name=operation_name)
            return Result(r.data, list(r.errors or []))

        return run_core
    fg = StrawberryGuard(guard, caller=caller_of)
    world = World(store)
    if kind == "strawberry-async":  # the async extension, under await schema.execute
        async_schema = build_schema([fg.async_extension])

        def run_async(query: str, who: Caller, variables: dict[str, Any] | None = None,
                      operation_name: str | None = None) -> Result:
            r = asyncio.run(async_schema.execute(
                query, context_value=DemoContext(who, world), variable_values=variables,
                operation_name=operation_name))
            return Result(r.data, list(r.errors or []))

        return run_async
    schema = build_schema([fg.extension])

    def run_strawberry(query: str, who: Caller, variables: dict[str, Any] | None = None,
                       operation_name: str | None = None) -> Result:
        r = schema.execute_sync(query, context_value=DemoContext(who, world),
                                variable_values=variables, operation_name=operation_name)
        return Result(r.data, list(r.errors or []))

    return run_strawberry


@pytest.fixture(params=["strawberry", "strawberry-async", "graphql-core"])
def run(request: pytest.FixtureRequest, guard: Guard, store: Store) -> Run:
    return make_runner(request.param, guard, store)
