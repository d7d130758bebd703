"""regorus: a pool of evaluator threads, each owning its interpreter; reloads
reach every worker; clean errors."""

from __future__ import annotations

import os
import queue
import sys
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


_PINNED: list[Any] = []


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
    """Why RegorusEngine evaluates on threads of its own."""
    raw = compile_regorus(ps())
    # The failed cross-thread call leaves `raw` in a traceback cycle that the
    # cyclic GC may collect on any thread; pin it so the main thread drops it.
    _PINNED.append(raw)
    raw.set_input({})
    assert raw.eval_rule("data.app.version") == 1
    with pytest.raises(BaseException, match="unsendable"):
        in_thread(lambda: raw.eval_rule("data.app.version"))


def test_callers_on_any_thread_share_the_engines_workers() -> None:
    engine = RegorusEngine(ps(), workers=2)
    assert in_thread(lambda: engine.evaluate("app.who", {"who": "t"}).result) == "t"
    assert engine.evaluate("app.who", {"who": "main"}).result == "main"
    # interpreters live on the engine's own long-lived threads, not the callers'
    assert [t.is_alive() for t in engine.worker_threads] == [True, True]


def test_short_lived_caller_threads_leave_nothing_behind() -> None:
    """Thread-per-request servers: no interpreter per caller thread, so none is
    leaked (or dropped on the wrong thread) when a caller thread dies."""
    engine = RegorusEngine(ps(), workers=1)
    workers = engine.worker_threads
    for n in range(30):
        assert in_thread(lambda n=n: engine.evaluate("app.who", {"who": n}).result) == n
    assert engine.worker_threads == workers and workers[0].is_alive()
    engine.close()
    for t in engine.worker_threads:
        t.join(timeout=5)
        assert not t.is_alive()
    assert engine.evaluate("app.version", {}).outcome is Outcome.UNAVAILABLE


async def test_async_evaluation_does_not_run_on_the_loop_thread() -> None:
    engine = RegorusEngine(ps())
    d = await engine.aevaluate("app.who", {"who": "a"})
    assert d.result == "a" and d.outcome is Outcome.VALUE
    assert (await engine.aevaluate("app.boom", {"zero": 0})).outcome is Outcome.UNAVAILABLE


def test_workers_must_be_positive() -> None:
    from fieldguard.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        RegorusEngine(workers=0)


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


def test_concurrent_evaluations_with_rust_backtrace_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers hide RUST_BACKTRACE while they evaluate (a backtrace per error
    is slow); several at once must neither fail nor lose the variable."""
    monkeypatch.setenv("RUST_BACKTRACE", "1")
    engine = RegorusEngine(ps(), workers=4)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # make the workers' Python code interleave
    failures: list[str] = []
    barrier = threading.Barrier(8)

    def client() -> None:
        barrier.wait()
        for i in range(200):
            decision = engine.evaluate("app.who", {"who": i})
            if decision.outcome is not Outcome.VALUE or decision.result != i:
                failures.append(f"{decision.outcome}: {decision.error}")

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
        engine.close()
    assert failures == []
    assert os.environ["RUST_BACKTRACE"] == "1"
