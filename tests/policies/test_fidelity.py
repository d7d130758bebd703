"""Differential test: the shipped policies decide identically on regorus and on OPA.

regorus is the embedded default engine; OPA's own Go engine
(``opa-golib-python-bindings``, through :class:`OpaEmbeddedEngine`) is the
oracle. The shipped library (``rego/`` + ``policies/``) is evaluated on
both through the production engine classes for 600 generated plan inputs
and 600 generated objects inputs (``tests/policies/strategies.py``:
contract-shaped, numbers clustered around every threshold the policy
compares them with), and the two answers must be identical.

"Identical" is strict: both decisions must be values (never undefined or
unavailable: the plan is defined for every well-formed input), and the two
values must serialise to the same canonical JSON, so ``1`` vs ``1.0`` and
``1`` vs ``true`` count as differences (Python's ``==`` would hide both).
No normalisation is applied: every list in the plan and objects results is
ordered by the policy itself (reasons by ``util.sorted_reasons``, charges by
scope then quota name, objects in input order, reason texts built from
``sort``-ed sets), so neither engine's set iteration order can leak into the
result. Should a list ever be built from a set, sort it in :func:`canonical`
and say which one and why.

The examples are derandomised (fixed seed, no example database), so every
run checks the same 1,200 inputs. ``pytest --hypothesis-show-statistics``
lists the outcomes, reason codes and effects they reached: every reason code
of the shipped library except ``client.malformed`` and ``query.malformed``
(malformed input: ``tests/rego/test_shipped_rego.py`` compares the engines
on that).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings

from fieldguard.policies.decision import Decision, Outcome
from fieldguard.policies.regorus_engine import RegorusEngine
from fieldguard.policies.source import PolicySet, load_policy_set
from tests.policies import strategies as gen

pytest.importorskip(
    "opa_bindings.engine",
    reason="the OPA oracle needs opa-golib-python-bindings "
           "(pip install --no-deps --ignore-requires-python opa-golib-python-bindings)",
)

from fieldguard.policies.opa_embedded import OpaEmbeddedEngine

pytestmark = pytest.mark.opa_embedded

ROOT = Path(__file__).resolve().parents[2]

os.environ.pop("RUST_BACKTRACE", None)  # regorus errors are slow with it set

COORDINATE = re.compile(r"\b[A-Z]\w*\.\w+")

FIDELITY = settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    database=None,
    # Each input is several nested composites (a few ms to draw); that is
    # the point, not a slow strategy.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def policy() -> PolicySet:
    return load_policy_set(ROOT / "rego", ROOT / "policies")


@pytest.fixture(scope="module")
def regorus(policy: PolicySet) -> RegorusEngine:
    return RegorusEngine(policy)


@pytest.fixture(scope="module")
def opa(policy: PolicySet) -> Any:
    engine = OpaEmbeddedEngine(policy)
    yield engine
    engine.close()


def canonical(value: Any) -> str:
    """The decision value as canonical JSON (sorted keys; ints, floats and
    booleans keep their JSON spelling). No list is reordered: see the
    module docstring."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)


def describe(decision: Decision) -> str:
    if decision.outcome is Outcome.VALUE:
        return canonical(decision.result)
    return f"<{decision.outcome.value}: {decision.error}>"


def differences(a: Any, b: Any, path: str = "$") -> list[str]:
    """Where two JSON values differ, as ``path: regorus-part != OPA-part``."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in differences(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in differences(x, y, f"{path}[{i}]")]
    return [] if canonical(a) == canonical(b) else [f"{path}: {canonical(a)} != {canonical(b)}"]


def both(regorus: RegorusEngine, opa: Any, path: str, doc: dict[str, Any]) -> Any:
    """Evaluate ``path`` on both engines; assert both answered and agree."""
    ours = regorus.evaluate(path, doc)
    oracle = opa.evaluate(path, doc)
    assert ours.outcome is Outcome.VALUE and oracle.outcome is Outcome.VALUE, (
        f"{path} must be defined on both engines: regorus {describe(ours)}, "
        f"OPA {describe(oracle)}"
    )
    if canonical(ours.result) != canonical(oracle.result):
        where = "\n  ".join(differences(ours.result, oracle.result)[:10])
        raise AssertionError(
            f"{path} differs (regorus != OPA):\n  {where}\n"
            f"regorus: {canonical(ours.result)}\nOPA:     {canonical(oracle.result)}")
    return ours.result


@FIDELITY
@given(doc=gen.plan_inputs())
def test_plan_identical_on_regorus_and_opa(regorus: RegorusEngine, opa: Any,
                                           doc: dict[str, Any]) -> None:
    plan = both(regorus, opa, "fieldguard.plan", doc)
    # The `default plan` hides an undefined rule body behind a refusal; for
    # well-formed input that fallback is itself a failure to decide.
    assert [r["code"] for r in plan["reasons"]] != ["policy.incomplete"], plan
    assert {f["coordinate"] for f in doc["fields"]} == set(plan["fields"])
    # What was reached (`pytest --hypothesis-show-statistics` lists these).
    event(f"outcome {plan['outcome']}")
    for reason in plan["reasons"]:
        event(f"reason {reason['code']}")
    for effect in plan["fields"].values():
        event(f"field {effect['effect']}")


@FIDELITY
@given(doc=gen.objects_inputs())
def test_objects_identical_on_regorus_and_opa(regorus: RegorusEngine, opa: Any,
                                              doc: dict[str, Any]) -> None:
    result = both(regorus, opa, "fieldguard.objects", doc)
    # Likewise `default objects := {"objects": []}`: one verdict per object.
    assert len(result["objects"]) == len(doc["objects"]), result
    for verdict in result["objects"]:
        event(f"visible {verdict['visible']}")
        for effect in verdict["fields"].values():
            event(f"field {effect['effect']}: {COORDINATE.sub('T.f', effect['reason'])}")
