"""Plan-decision latency per engine on the shipped policy library.

One ``data.fieldguard.plan`` evaluation for a realistic GraphQL query
(12 coordinates, usage and signals filled in), through each engine:

* ``regorus`` — embedded Rust interpreter;
* ``opa-embedded`` sync and async (inline, and offloaded to a thread, which
  is the measurement behind ``OpaEmbeddedEngine(offload=False)``);
* ``opa-http`` sync and async, over loopback HTTP to the fixture OPA server
  (OPA's engine behind a Python HTTP server: the server side is slower than a
  real OPA, so read it as an upper bound of the client's cost).

Run with ``pytest benchmarks --benchmark-enable``; pytest-benchmark reports
medians (and the other statistics) per engine. Nothing asserts a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fieldguard.policies.decision import Outcome
from fieldguard.policies.source import PolicySet, load_policy_set

ROOT = Path(__file__).resolve().parents[1]

PLAN = "fieldguard.plan"

COORDINATES = [
    ("User.id", ["public"]), ("User.name", ["public"]), ("User.handle", ["public"]),
    ("User.email", ["pii", "contact"]), ("User.phone", ["pii", "contact"]),
    ("User.location", ["pii", "location"]), ("User.birthday", ["pii"]),
    ("User.avatar", ["public"]), ("User.followers", ["public"]),
    ("Post.id", ["public"]), ("Post.body", ["public"]), ("Post.location", ["location"]),
]

PLAN_INPUT: dict[str, Any] = {
    "subject": {"id": "u7", "authenticated": True, "roles": ["support"], "scopes": [],
                "tier": None, "verified": False, "account_age_days": 400},
    "client": {"ip": "203.0.113.9", "prefix": "203.0.113.0/24", "app": "partner-x",
               "user_agent": "partner-x/2.1"},
    "purpose": "support",
    "operation": {"protocol": "graphql", "type": "query", "name": "Users",
                  "complexity": {"depth": 4, "aliases": 2, "fields": 31, "cost": 212,
                                 "max_list": 100}},
    "fields": [{"coordinate": c, "tags": t, "count": 25} for c, t in COORDINATES],
    "usage": {"subject": {"records_day": 480, "cost_hour": 1900}, "app": {},
              "ip": {"records_day": 900}, "prefix": {"records_day": 2000}},
    "signals": {"enumeration_score": 0.0, "distinct_subjects_day": 120},
}


@pytest.fixture(scope="module")
def library() -> PolicySet:
    if not (ROOT / "rego" / "fieldguard").is_dir():
        pytest.skip("the shipped policy library (rego/fieldguard) is not in this checkout yet")
    return load_policy_set(ROOT / "rego", ROOT / "policies")


@pytest.fixture(scope="module")
def fixture_opa() -> Iterator[Any]:
    from tests.support.opa_server import OpaFixtureServer

    with OpaFixtureServer() as server:
        yield server


def check(outcome: Outcome) -> None:
    # A benchmark of an engine that fails is not a benchmark.
    assert outcome is Outcome.VALUE, outcome


def test_bench_plan_regorus(benchmark: Any, library: PolicySet) -> None:
    from fieldguard.policies.regorus_engine import RegorusEngine

    engine = RegorusEngine(library)
    check(engine.evaluate(PLAN, PLAN_INPUT).outcome)
    benchmark(engine.evaluate, PLAN, PLAN_INPUT)


def test_bench_plan_opa_embedded(benchmark: Any, library: PolicySet) -> None:
    from fieldguard.policies.opa_embedded import OpaEmbeddedEngine

    engine = OpaEmbeddedEngine(library)
    check(engine.evaluate(PLAN, PLAN_INPUT).outcome)
    benchmark(engine.evaluate, PLAN, PLAN_INPUT)
    engine.close()


@pytest.mark.parametrize("offload", [False, True], ids=["inline", "to_thread"])
def test_bench_plan_opa_embedded_async(benchmark: Any, library: PolicySet, offload: bool) -> None:
    from fieldguard.policies.opa_embedded import OpaEmbeddedEngine

    engine = OpaEmbeddedEngine(library, offload=offload)
    loop = asyncio.new_event_loop()
    try:
        check(loop.run_until_complete(engine.aevaluate(PLAN, PLAN_INPUT)).outcome)
        benchmark(lambda: loop.run_until_complete(engine.aevaluate(PLAN, PLAN_INPUT)))
    finally:
        loop.close()
        engine.close()


def test_bench_plan_opa_http(benchmark: Any, library: PolicySet, fixture_opa: Any) -> None:
    from fieldguard.policies.opa_http import OpaHttpEngine

    fixture_opa.clear()
    engine = OpaHttpEngine(fixture_opa.engine_url, library, timeout=2.0)
    check(engine.evaluate(PLAN, PLAN_INPUT).outcome)
    benchmark(engine.evaluate, PLAN, PLAN_INPUT)
    engine.close()


def test_bench_plan_opa_http_async(benchmark: Any, library: PolicySet, fixture_opa: Any) -> None:
    from fieldguard.policies.opa_http import OpaHttpEngine

    fixture_opa.clear()
    engine = OpaHttpEngine(fixture_opa.engine_url, library, timeout=2.0)
    loop = asyncio.new_event_loop()
    try:
        check(loop.run_until_complete(engine.aevaluate(PLAN, PLAN_INPUT)).outcome)
        benchmark(lambda: loop.run_until_complete(engine.aevaluate(PLAN, PLAN_INPUT)))
        loop.run_until_complete(engine.aclose())
    finally:
        loop.close()
