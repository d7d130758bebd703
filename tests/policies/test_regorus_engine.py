"""regorus: one interpreter per thread, reloads per thread, clean errors."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Any

import pytest

from fieldguard.errors import EngineUnavailable, PolicyError
from fieldguard.policies.decision import Outcome
from fieldguard.policies.regorus_engine import (
    RegorusEngine,
    clean_error,
    compile_regorus,
    problem_from_error,
)
from fieldguard.policies.source import PolicySet

V1 = "package app\n\nversion := 1\n\nwho := input.who\n\nboom := 1 / input.zero\n"
V2 = V1.replace("version := 1", "version := 2")


def ps(text: str = V1) -> PolicySet:
    return PolicySet.from_sources([("rego/app.rego", text)])


def in_thread(fn: Callable[[], Any]) -> Any:
    out: queue.Queue[tuple[bool, Any]] = queue.Queue()

    def run() -> None:
        try:
            out.put((True, fn()))
        except BaseException as exc:
            out.put((False, exc))

    t = threading.Thread(target=run)
    t.start()
    t.join()
    ok, value = out.get()
    if not ok:
        raise value
    return value


def test_a_raw_regorus_engine_is_bound_to_its_thread() -> None:
    """Why RegorusEngine keeps one interpreter per thread."""
    raw = compile_regorus(ps())
    raw.set_input({})
    assert raw.eval_rule("data.app.version") == 1
    with pytest.raises(BaseException, match="unsendable"):
        in_thread(lambda: raw.eval_rule("data.app.version"))


def test_other_threads_get_their_own_interpreter() -> None:
    engine = RegorusEngine(ps())
    mine = engine.thread_engine()
    theirs = in_thread(lambda: id(engine.thread_engine()))
    assert theirs != id(mine)
    assert in_thread(lambda: engine.evaluate("app.who", {"who": "t"}).result) == "t"
    assert engine.thread_engine() is mine  # cached per thread


def test_reload_reaches_every_thread_on_its_next_decision() -> None:
    engine = RegorusEngine(ps())
    first, go, done = threading.Event(), threading.Event(), threading.Event()
    seen: list[Any] = []

    def worker() -> None:
        seen.append(engine.evaluate("app.version", {}).result)
        first.set()
        go.wait()
        seen.append(engine.evaluate("app.version", {}).result)
        done.set()

    t = threading.Thread(target=worker)
    t.start()
    first.wait()
    engine.load(ps(V2))  # the worker still holds its v1 interpreter
    go.set()
    done.wait()
    t.join()
    assert seen == [1, 2]
    assert engine.evaluate("app.version", {}).result == 2


def test_a_failed_reload_leaves_every_thread_on_the_old_policy() -> None:
    engine = RegorusEngine(ps())
    assert in_thread(lambda: engine.evaluate("app.version", {}).result) == 1
    with pytest.raises(PolicyError):
        engine.load(ps("package app\n\nversion := \n"))
    assert engine.evaluate("app.version", {}).result == 1
    assert in_thread(lambda: engine.evaluate("app.version", {}).result) == 1


def test_parse_error_location() -> None:
    with pytest.raises(PolicyError) as caught:
        RegorusEngine(ps("package app\n\nallow if {\n  input.x ==\n}\n"))
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.col) == ("rego/app.rego", 5, 1)
    assert "Stack backtrace" not in problem.message


def test_problem_from_error_and_clean_error() -> None:
    raw = ("\n--> rego/b.rego:5:3\n  |\nerror: expecting expression\n"
           "Stack backtrace:\n   0: regorus::parser\n")
    assert clean_error(raw).endswith("error: expecting expression")
    assert str(problem_from_error(raw, "?")) == "rego/b.rego:5:3: expecting expression"
    fallback = problem_from_error("weird failure", "rego/x.rego")
    assert str(fallback) == "rego/x.rego:1:1: weird failure"


def test_rust_backtrace_is_unset_during_evaluation_and_restored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUST_BACKTRACE", "full")
    engine = RegorusEngine(ps())
    d = engine.evaluate("app.boom", {"zero": 0})
    assert d.outcome is Outcome.UNAVAILABLE
    assert "divide by zero" in (d.error or "")
    assert "Stack backtrace" not in (d.error or "")
    assert os.environ["RUST_BACKTRACE"] == "full"


def test_no_policy_is_unavailable() -> None:
    engine = RegorusEngine()
    assert engine.evaluate("app.version", {}).outcome is Outcome.UNAVAILABLE
    with pytest.raises(EngineUnavailable):
        engine.health()
