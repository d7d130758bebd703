"""Cost of the shipped Rego library's two decisions, per engine.

``fieldguard.plan`` and ``fieldguard.objects`` on the shipped policy
(``rego/`` + ``policies/``), evaluated through the production engine classes:

* ``plan-partner``: the engines benchmark's request (partner app, support
  purpose, 12 coordinates, usage filled in; refused for a coordinate outside
  the partner's contract);
* ``plan-member``: the guarded GraphQL benchmark's request (a verified member,
  default purpose, 8 ``User`` fields of which 4 depend on each subject);
* ``objects``: the objects decision that request leads to: 13 object shapes
  (privacy settings, visibility, consent and the ``self`` relation varied)
  for the same 8 coordinates.

Run with ``pytest benchmarks/test_bench_rego.py --benchmark-enable`` and read
the medians. Nothing asserts a time; each benchmark first checks that the
decision is a value of the expected shape (a fast undefined is no result).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from benchmarks.test_bench_engines import PLAN_INPUT

from fieldguard.policies.decision import Outcome
from fieldguard.policies.source import PolicySet, load_policy_set

ROOT = Path(__file__).resolve().parents[1]

SUBJECT = {"id": "u2", "authenticated": True, "roles": [], "scopes": [], "tier": None,
           "verified": True, "account_age_days": 400}
CLIENT = {"ip": "203.0.113.10", "prefix": "203.0.113.0/24", "app": None,
          "user_agent": "bench"}
OPERATION = {"protocol": "graphql", "type": "query", "name": "Users",
             "complexity": {"depth": 2, "aliases": 0, "fields": 9, "cost": 100, "max_list": 100}}
COORDINATES = ["User.id", "User.handle", "User.displayName", "User.bio",
               "User.email", "User.phone", "User.birthday", "User.location"]

PLAN_MEMBER: dict[str, Any] = {
    "subject": SUBJECT, "client": CLIENT, "purpose": None, "operation": OPERATION,
    "fields": [{"coordinate": c, "tags": [], "count": 100} for c in COORDINATES],
    "usage": {"subject": {"records_day": 100}, "app": {}, "ip": {}, "prefix": {}},
    "signals": {"enumeration_score": 0.0, "distinct_subjects_day": 12},
}

_SETTINGS = ["everyone", "authenticated", "nobody"]
_KEYS = ["email", "phone", "birthday", "location"]


def _user(i: int) -> dict[str, Any]:
    privacy = {k: _SETTINGS[(i + j) % 3] for j, k in enumerate(_KEYS)
               if (i >> j) & 1 or i % 5 == 0}
    return {"type": "User", "relation": "self" if i == 0 else "other",
            "attrs": {"privacy": privacy,
                      "visibility": ["public", "members", "private", "public"][i % 4],
                      "consent": [["analytics"], [], ["default"]][i % 3]}}


OBJECTS: dict[str, Any] = {
    "subject": SUBJECT, "client": CLIENT, "purpose": None, "operation": OPERATION,
    "signals": PLAN_MEMBER["signals"],
    "coordinates": COORDINATES,
    "objects": [_user(i) for i in range(13)],
}

CASES = {
    "plan-partner": ("fieldguard.plan", PLAN_INPUT),
    "plan-member": ("fieldguard.plan", PLAN_MEMBER),
    "objects": ("fieldguard.objects", OBJECTS),
}


@pytest.fixture(scope="module")
def library() -> PolicySet:
    return load_policy_set(ROOT / "rego", ROOT / "policies")


def _regorus(policy: PolicySet) -> Any:
    from fieldguard.policies.regorus_engine import RegorusEngine

    return RegorusEngine(policy)


def _opa_embedded(policy: PolicySet) -> Any:
    pytest.importorskip("opa_bindings.engine")
    from fieldguard.policies.opa_embedded import OpaEmbeddedEngine

    return OpaEmbeddedEngine(policy)


@pytest.fixture(scope="module", params=[
    pytest.param(_regorus, id="regorus"),
    pytest.param(_opa_embedded, id="opa-embedded", marks=pytest.mark.opa_embedded),
])
def engine(request: pytest.FixtureRequest, library: PolicySet) -> Iterator[Any]:
    make: Callable[[PolicySet], Any] = request.param
    eng = make(library)
    yield eng
    close = getattr(eng, "close", None)
    if close is not None:
        close()


def check(case: str, result: Any) -> None:
    """A benchmark of a decision that failed is not a benchmark."""
    if case == "objects":
        assert len(result["objects"]) == len(OBJECTS["objects"])
        assert any(o["visible"] and o["fields"] for o in result["objects"])
    else:
        assert {r["code"] for r in result["reasons"]} != {"policy.incomplete"}
        assert set(result["fields"]) == {f["coordinate"] for f in CASES[case][1]["fields"]}


@pytest.mark.parametrize("case", list(CASES))
def test_bench_rego_decision(benchmark: Any, engine: Any, case: str) -> None:
    path, doc = CASES[case]
    decision = engine.evaluate(path, doc)
    assert decision.outcome is Outcome.VALUE, decision
    check(case, decision.result)
    benchmark(engine.evaluate, path, doc)
