"""OPA's Go engine in process: error locations, swaps, offload, filters."""

from __future__ import annotations

import sys
import threading

import pytest

from fieldguard.errors import ConfigurationError, EngineUnavailable, PolicyError
from fieldguard.policies.decision import Outcome
from fieldguard.policies.opa_embedded import OpaEmbeddedEngine, parse_opa_errors
from fieldguard.policies.source import Module, PolicySet

pytestmark = pytest.mark.opa_embedded

GOOD = "package app\n\nversion := 1\n"


def ps(text: str = GOOD, path: str = "rego/app.rego") -> PolicySet:
    return PolicySet.from_sources([(path, text)])


def test_parse_errors_located_with_caret_column() -> None:
    msg = (
        "2 errors occurred:\n"
        "rego/a.rego:4: rego_parse_error: unexpected } token\n"
        "\tx if { input.a = }\n"
        "\t                 ^\n"
        "rego/b.rego:2: rego_parse_error: unexpected eof token"
    )
    source = Module("rego/a.rego", "package a\n\n\n    x if { input.a = }\n")
    problems = parse_opa_errors(msg, [source])
    assert [str(p) for p in problems] == [
        "rego/a.rego:4:22: rego_parse_error: unexpected } token",  # 18 + 4 indentation
        "rego/b.rego:2:1: rego_parse_error: unexpected eof token",
    ]


def test_compile_errors_after_bundle_activation_prefix() -> None:
    msg = ("bundle activation failed: 2 errors occurred:\n"
           "b.rego:4: rego_type_error: function data.b.f has arity 1, got 2 arguments\n"
           "b.rego:5: rego_type_error: undefined function unknownfn")
    problems = parse_opa_errors(msg)
    assert [(p.file, p.line, p.col) for p in problems] == [("b.rego", 4, 1), ("b.rego", 5, 1)]
    assert problems[1].message == "rego_type_error: undefined function unknownfn"


def test_unlocated_error_falls_back_to_the_module() -> None:
    (p,) = parse_opa_errors("something odd", fallback_file="rego/x.rego")
    assert (p.file, p.line, p.col, p.message) == ("rego/x.rego", 1, 1, "something odd")


def test_every_error_of_a_load_is_reported() -> None:
    policy = PolicySet.from_sources([
        ("rego/a.rego", "package a\n\nx := \n"),
        ("rego/b.rego", "package b\n\ny if {\n  z ==\n}\n"),
    ])
    with pytest.raises(PolicyError) as caught:
        OpaEmbeddedEngine(policy)
    assert {p.file for p in caught.value.problems} == {"rego/a.rego", "rego/b.rego"}


def test_data_conflicting_with_a_rule_is_a_policy_error() -> None:
    policy = PolicySet.from_sources([("rego/c.rego", "package c\n\nx := 1\n")],
                                    {"c": {"x": 2}})
    with pytest.raises(PolicyError, match=r"rego/c\.rego:3:1: rego_compile_error: conflicting"):
        OpaEmbeddedEngine(policy)


def test_swap_under_concurrent_evaluation_never_reports_closed() -> None:
    engine = OpaEmbeddedEngine(ps())
    stop = threading.Event()
    bad: list[str] = []

    def worker() -> None:
        while not stop.is_set():
            d = engine.evaluate("app.version", {})
            if d.outcome is not Outcome.VALUE:
                bad.append(d.error or "")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(50):
        engine.load(ps(GOOD.replace("1", str(i + 2))))
    stop.set()
    for t in threads:
        t.join()
    assert bad == []
    assert engine.evaluate("app.version", {}).result == 51


async def test_offload_runs_in_a_worker_thread() -> None:
    engine = OpaEmbeddedEngine(ps("package app\n\nversion := 1\n\necho := input\n"), offload=True)
    d = await engine.aevaluate("app.echo", {"a": [1]}, decision_id="x")
    assert (d.result, d.decision_id) == ({"a": [1]}, "x")


def test_close_makes_decisions_unavailable() -> None:
    engine = OpaEmbeddedEngine(ps())
    engine.close()
    d = engine.evaluate("app.version", {})
    assert d.outcome is Outcome.UNAVAILABLE and "no policy" in (d.error or "")
    with pytest.raises(EngineUnavailable):
        engine.health()


def test_no_policy_yet_is_unavailable() -> None:
    engine = OpaEmbeddedEngine()
    assert engine.revision == "" and engine.policy is None
    assert engine.evaluate("app.version", {}).outcome is Outcome.UNAVAILABLE


def test_compile_filters_on_the_serving_policy() -> None:
    src = "package f\n\ninclude if input.posts.owner == input.user\n"
    engine = OpaEmbeddedEngine(ps(src, "rego/f.rego"))
    out = engine.compile_filters("data.f.include", {"user": "u1"}, unknowns=["input.posts"],
                                 target="ucast", dialect="all")
    assert out["query"]["field"] == "posts.owner"
    with pytest.raises(EngineUnavailable):
        OpaEmbeddedEngine().compile_filters("data.f.include", {})


def test_missing_bindings_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the import fail as if not installed.
    monkeypatch.setitem(sys.modules, "opa_bindings", None)
    with pytest.raises(ConfigurationError, match="--no-deps --ignore-requires-python"):
        OpaEmbeddedEngine()
