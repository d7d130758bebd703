"""One contract, every engine: regorus, OPA embedded, OPA over HTTP (fixture
server), and a real OPA when ``FIELDGUARD_OPA_URL`` is set.

Each test runs once per engine (see ``make_engine`` in conftest.py) and once
sync, once async where the call has both forms.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

import pytest

from fieldguard.errors import DecisionUndefined, EngineUnavailable, PolicyError
from fieldguard.policies.decision import Decision, Outcome
from fieldguard.policies.engine import Engine
from fieldguard.policies.source import PolicySet

POLICY = """package contract

echo := input

allow if input.user == "alice"

total := input.a + input.b

conflict := 1 if input.c
conflict := 2 if input.c

quotient := input.a / input.b

limit := data.policy.limits.max

version := 1
"""

V2 = POLICY.replace("version := 1", "version := 2")
BROKEN_PARSE = "package contract\n\nversion := 3\n\nleak if {\n  input.x ==\n}\n"
BROKEN_COMPILE = "package contract\n\nversion := 3\n\nleak if {\n  nope\n}\n"
DATA = {"policy": {"limits": {"max": 7}}}


def policy(text: str = POLICY, data: Mapping[str, Any] = DATA) -> PolicySet:
    return PolicySet.from_sources([("rego/contract.rego", text)], data)


@pytest.fixture(params=["sync", "async"])
def decide(request: pytest.FixtureRequest) -> Any:
    """``decide(engine, path, input, **kw)`` through evaluate or aevaluate."""

    def call(engine: Engine, path: str, input: Mapping[str, Any], **kw: Any) -> Decision:
        if request.param == "sync":
            return engine.evaluate(path, input, **kw)
        return asyncio.run(engine.aevaluate(path, input, **kw))

    return call


def test_engine_satisfies_the_protocol(make_engine: Any) -> None:
    engine = make_engine(policy())
    assert isinstance(engine, Engine)
    engine.health()


def test_value(make_engine: Any, decide: Any) -> None:
    engine = make_engine(policy())
    d = decide(engine, "contract.total", {"a": 1, "b": 2}, decision_id="req-1")
    assert d.outcome is Outcome.VALUE and d.defined
    assert d.result == 3 and d.require() == 3
    assert d.path == "contract.total"
    assert d.decision_id == "req-1"
    assert d.engine == engine.name
    assert d.revision == policy().revision == engine.revision
    assert d.error is None


def test_a_fresh_decision_id_when_none_is_given(make_engine: Any, decide: Any) -> None:
    engine = make_engine(policy())
    ids = {decide(engine, "contract.version", {}).decision_id for _ in range(3)}
    assert len(ids) == 3 and all(ids)


def test_policy_data_is_visible(make_engine: Any, decide: Any) -> None:
    engine = make_engine(policy())
    assert decide(engine, "contract.limit", {}).result == 7


@pytest.mark.parametrize(
    ("path", "input"),
    [
        ("contract.allow", {"user": "bob"}),  # rule body false, no default
        ("contract.missing", {}),  # no such rule
        ("nowhere.at_all", {}),  # no such package
    ],
)
def test_undefined_is_not_allow(
    make_engine: Any, decide: Any, path: str, input: dict[str, Any]
) -> None:
    d = decide(make_engine(policy()), path, input)
    assert d.outcome is Outcome.UNDEFINED
    assert d.result is None and not d.defined
    with pytest.raises(DecisionUndefined):
        d.require()


@pytest.mark.parametrize(
    ("path", "input", "why"),
    [
        ("contract.conflict", {"c": True}, "conflict"),
        ("contract.quotient", {"a": 1, "b": 0}, "divide by zero"),
    ],
)
def test_runtime_error_is_unavailable(
    make_engine: Any, decide: Any, path: str, input: dict[str, Any], why: str
) -> None:
    engine = make_engine(policy())
    d = decide(engine, path, input)
    assert d.outcome is Outcome.UNAVAILABLE and not d.defined
    assert d.result is None
    assert why in (d.error or "")
    assert d.revision == engine.revision
    with pytest.raises(EngineUnavailable):
        d.require()


def test_input_that_is_not_json_is_unavailable(make_engine: Any, decide: Any) -> None:
    d = decide(make_engine(policy()), "contract.echo", {"when": object()})
    assert d.outcome is Outcome.UNAVAILABLE


ROUND_TRIP = {
    "text": 'é😀 "quoted" \\ back\nslash',
    "int": -3,
    "big": 9007199254740993,  # above 2**53: must not go through a float
    "float": 1.5,
    "tenth": 0.1,
    "yes": True,
    "no": False,
    "nothing": None,
    "list": [1, [2, {}], []],
    "nested": {"a": {"b": {"c": ["d"]}}, "": "empty key"},
}


def test_input_round_trips_as_json(make_engine: Any, decide: Any) -> None:
    d = decide(make_engine(policy()), "contract.echo", ROUND_TRIP)
    assert d.outcome is Outcome.VALUE
    assert d.result == ROUND_TRIP


def test_load_swaps_policy_and_revision(make_engine: Any, decide: Any) -> None:
    engine = make_engine(policy())
    first = engine.revision
    assert decide(engine, "contract.version", {}).result == 1
    engine.load(policy(V2))
    assert engine.revision == policy(V2).revision != first
    d = decide(engine, "contract.version", {})
    assert d.result == 2 and d.revision == engine.revision


def test_data_change_changes_revision(make_engine: Any, decide: Any) -> None:
    engine = make_engine(policy())
    engine.load(policy(data={"policy": {"limits": {"max": 9}}}))
    assert decide(engine, "contract.limit", {}).result == 9
    assert engine.revision != policy().revision


@pytest.mark.parametrize(
    ("broken", "line"), [(BROKEN_PARSE, 7), (BROKEN_COMPILE, 6)], ids=["parse", "compile"]
)
def test_broken_module_keeps_last_good_policy(
    make_engine: Any, decide: Any, broken: str, line: int
) -> None:
    engine = make_engine(policy())
    engine.load(policy(V2))
    good = engine.revision
    bad = PolicySet.from_sources(
        [("rego/contract.rego", broken), ("rego/extra.rego", "package extra\nx := 1\n")], DATA
    )
    with pytest.raises(PolicyError) as caught:
        engine.load(bad)
    problems = caught.value.problems
    assert problems, "a PolicyError names at least one problem"
    where = {(p.file, p.line) for p in problems}
    assert ("rego/contract.rego", line) in where, str(caught.value)
    assert all(p.col >= 1 for p in problems)
    assert f"rego/contract.rego:{line}:" in str(caught.value)
    # The last good policy serves, under its own revision.
    assert engine.revision == good
    d = decide(engine, "contract.version", {})
    assert (d.result, d.revision) == (2, good)
    assert decide(engine, "extra.x", {}).outcome is Outcome.UNDEFINED


def test_test_modules_are_not_loaded(make_engine: Any, decide: Any) -> None:
    ps = PolicySet.from_sources([
        ("rego/contract.rego", POLICY),
        ("rego/contract_test.rego", "package contract\n\ntest_version if version == 1\n"),
    ], DATA)
    engine = make_engine(ps)
    assert decide(engine, "contract.test_version", {}).outcome is Outcome.UNDEFINED


def test_threads_never_see_each_others_results(make_engine: Any) -> None:
    engine = make_engine(policy())
    failures: list[str] = []
    start = threading.Barrier(6)

    def worker(n: int) -> None:
        start.wait()
        for i in range(40):
            want = {"who": f"t{n}", "i": i, "a": n, "b": i}
            d = engine.evaluate("contract.echo", want)
            if d.result != want:
                failures.append(f"thread {n} call {i}: {d.outcome} {d.result} {d.error}")
            t = engine.evaluate("contract.total", want)
            if t.result != n + i:
                failures.append(f"thread {n} total {i}: {t.result}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


async def test_concurrent_async_decisions_stay_apart(make_engine: Any) -> None:
    engine = make_engine(policy())
    inputs = [{"who": f"req{i}", "a": i, "b": 1} for i in range(40)]
    results = await asyncio.gather(*(engine.aevaluate("contract.echo", x) for x in inputs))
    assert [d.result for d in results] == inputs


def test_reload_under_load_never_fails_a_decision(make_engine: Any, engine_kind: str) -> None:
    """Decisions during reloads get the old or the new policy, never an error.

    For the in-process engines the swap is atomic, so the revision a decision
    reports is the one of the policy that answered. OPA's REST API has no
    transaction across requests, so over HTTP only the outcome is checked.
    """
    versions = {policy(POLICY).revision: 1, policy(V2).revision: 2}
    engine = make_engine(policy())
    stop = threading.Event()
    failures: list[str] = []
    seen: set[int] = set()

    def worker() -> None:
        while not stop.is_set():
            d = engine.evaluate("contract.version", {})
            if d.outcome is not Outcome.VALUE:
                failures.append(f"{d.outcome}: {d.error}")
            elif engine_kind in ("regorus", "opa-embedded") and versions[d.revision] != d.result:
                failures.append(f"revision {d.revision} answered version {d.result}")
            else:
                seen.add(d.result)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(20):
            engine.load(policy(V2 if i % 2 == 0 else POLICY))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert seen <= {1, 2}
