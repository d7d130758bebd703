"""The embedded default engine: regorus, a Rust Rego interpreter.

A regorus ``Engine`` is bound to the thread that created it (it panics when
used, or dropped, on another). :class:`RegorusEngine` therefore owns a small
pool of long-lived evaluator threads, each compiling its own interpreter from
the current immutable :class:`PolicySet`; callers on any thread hand their
evaluation to the pool. A reload bumps a generation counter and each worker
recompiles on its next job.

Example:
    >>> from fieldguard.policies.source import PolicySet
    >>> ps = PolicySet.from_sources([("p.rego", "package p\\nallow if input.ok\\n")])
    >>> e = RegorusEngine(ps)
    >>> e.evaluate("p.allow", {"ok": True}).result, e.evaluate("p.allow", {}).outcome.value
    (True, 'undefined')
"""

from __future__ import annotations

import _thread
import asyncio
import json
import os
import queue
import re
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import regorus

from fieldguard.errors import ConfigurationError, EngineUnavailable, PolicyError, PolicyProblem
from fieldguard.policies.decision import Decision, Outcome, new_decision_id
from fieldguard.policies.source import PolicySet

_LOCATION = re.compile(r"-->\s*(?P<file>.+?):(?P<line>\d+):(?P<col>\d+)")
_MESSAGE = re.compile(r"^error:\s*(?P<msg>.+)$", re.MULTILINE)


def clean_error(text: str) -> str:
    """Strip the Rust backtrace regorus appends to error messages."""
    return text.split("Stack backtrace:", 1)[0].strip()


def problem_from_error(text: str, fallback_file: str) -> PolicyProblem:
    """Turn a regorus error into a located :class:`PolicyProblem`.

    Example:
        >>> err = "\\n--> rego/b.rego:5:1\\n  |\\nerror: expecting expression\\n"
        >>> str(problem_from_error(err, "?"))
        'rego/b.rego:5:1: expecting expression'
    """
    text = clean_error(text)
    loc = _LOCATION.search(text)
    msg = _MESSAGE.search(text)
    message = msg.group("msg").strip() if msg else text.splitlines()[-1] if text else "error"
    if loc:
        return PolicyProblem(loc["file"], int(loc["line"]), int(loc["col"]), message)
    return PolicyProblem(fallback_file, 1, 1, message)


_BACKTRACE_LOCK = threading.Lock()
_backtrace_users = 0
_backtrace_saved: str | None = None


@contextmanager
def quiet_backtraces() -> Iterator[None]:
    """Hide ``RUST_BACKTRACE`` while regorus works.

    With it set, regorus symbolises a backtrace for every error, which makes a
    failing evaluation orders of magnitude slower. Evaluator threads overlap,
    so the first one in hides the variable and the last one out restores it
    (popping and restoring per thread raced: ``KeyError`` under load).
    """
    global _backtrace_users, _backtrace_saved
    with _BACKTRACE_LOCK:
        if _backtrace_users == 0:
            _backtrace_saved = os.environ.pop("RUST_BACKTRACE", None)
        _backtrace_users += 1
    try:
        yield
    finally:
        with _BACKTRACE_LOCK:
            _backtrace_users -= 1
            if _backtrace_users == 0 and _backtrace_saved is not None:
                os.environ["RUST_BACKTRACE"] = _backtrace_saved
                _backtrace_saved = None


def compile_regorus(policy: PolicySet) -> Any:
    """A new regorus Engine with ``policy`` loaded, bound to this thread.

    Raises:
        PolicyError: a module does not parse or compile.
    """
    engine = regorus.Engine()
    problems: list[PolicyProblem] = []
    with quiet_backtraces():
        for module in policy.modules:
            try:
                engine.add_policy(module.path, module.text)
            except Exception as exc:  # regorus raises RuntimeError/ValueError
                problems.append(problem_from_error(str(exc), module.path))
        if not problems and policy.data:
            try:
                engine.add_data(dict(policy.data))
            except Exception as exc:
                problems.append(PolicyProblem("<data>", 1, 1, clean_error(str(exc))))
        if not problems:
            # regorus parses on add_policy but checks safety (unsafe or
            # undefined variables) only when it first evaluates; do it now so
            # a broken edit is refused at load, not on the first request.
            try:
                engine.eval_query("true")
            except Exception as exc:
                problems.append(problem_from_error(str(exc), policy.modules[0].path
                                                   if policy.modules else "<policy>"))
    if problems:
        # Drop the interpreter before raising: the PolicyError's traceback
        # keeps this frame alive, and whoever keeps the error (a watcher's
        # last_error) may release it on another thread, where regorus refuses
        # to drop an interpreter.
        del engine
        raise PolicyError(problems)
    return engine


_UNDEFINED = '"<undefined>"'


def evaluate_json(engine: Any, path: str) -> Any:
    """Evaluate ``data.<path>`` on a prepared regorus engine.

    Returns the value, or :data:`UNDEFINED_VALUE` when undefined. Results go
    through JSON because ``eval_rule`` cannot return a set of objects
    (Python dicts are unhashable). A path that names a package rather than a
    rule is evaluated as a query, as OPA would.
    """
    try:
        raw = engine.eval_rule_as_json("data." + path)
    except Exception as exc:
        if "not a valid rule path" not in str(exc):
            raise
        doc = json.loads(engine.eval_query_as_json("data." + path))
        results = doc.get("result") or []
        if not results:
            return UNDEFINED_VALUE
        return results[0]["expressions"][0]["value"]
    return UNDEFINED_VALUE if raw == _UNDEFINED else json.loads(raw)


UNDEFINED_VALUE: Any = object()


_STOP = object()


class _WorkerError(Exception):
    """An evaluation error, as text, handed from a worker to its caller."""


class _Job:
    """One evaluation handed to a worker. Completion is signalled with a bare
    C-level lock (held until the worker releases it): several times cheaper
    than a Future's condition variable, and this hop is on every decision."""

    __slots__ = ("done", "error", "generation", "input", "notify", "path", "policy", "value")

    def __init__(self, generation: int, policy: PolicySet, path: str,
                 input: Mapping[str, Any]) -> None:
        self.generation, self.policy, self.path, self.input = generation, policy, path, input
        self.value: Any = UNDEFINED_VALUE
        self.error: str | None = None
        self.notify: Any = None  # set by async callers: called when done
        self.done = _thread.allocate_lock()
        self.done.acquire()

    def wait(self) -> Any:
        self.done.acquire()
        if self.error is not None:
            raise _WorkerError(self.error)
        return self.value


def _worker(jobs: queue.SimpleQueue[Any], coverage: bool) -> None:
    """One evaluator thread: owns its interpreter from birth to death, so the
    interpreter is only ever used and dropped on this thread."""
    engine: Any = None
    generation = -1
    while True:
        job = jobs.get()
        if job is _STOP:
            break
        try:
            if generation != job.generation:
                engine = None  # drop the old interpreter here, on its own thread
                engine = compile_regorus(job.policy)
                if coverage:
                    engine.set_enable_coverage(True)
                generation = job.generation
            with quiet_backtraces():
                engine.set_input(job.input)
                job.value = evaluate_json(engine, job.path)
        except BaseException as exc:  # reported to the caller as "unavailable"
            # Only text crosses threads: the exception's frames hold this
            # thread's interpreter, and the caller may release them on its own
            # thread, where regorus refuses to drop it.
            job.error = clean_error(str(exc)) or type(exc).__name__
        notify = job.notify
        job.done.release()
        if notify is not None:
            notify()
        del job, notify
    engine = None


def _stop_workers(jobs: queue.SimpleQueue[Any], count: int) -> None:
    for _ in range(count):
        jobs.put(_STOP)


class RegorusEngine:
    """Embedded engine on a small pool of evaluator threads (see module docs).

    A regorus interpreter may only be used and dropped on the thread that
    created it. Binding one to each *caller* thread leaks an interpreter
    whenever a short-lived thread dies (thread-per-request servers) and costs
    a policy compile per new thread; so the engine owns ``workers``
    long-lived threads, each with its own interpreter, and hands each
    evaluation to one of them. The hop costs tens of microseconds against an
    evaluation of about a millisecond, and :meth:`aevaluate` awaits it without
    blocking the event loop. (Measured here: the hop adds about 0.1 ms per
    decision, two decisions per request.)

    Args:
        policy: the policy to serve; may be loaded later with :meth:`load`.
        workers: evaluator threads (regorus holds the GIL while it evaluates,
            so more than a couple only adds memory).
        coverage: record coverage in the workers' interpreters.

    Raises:
        ConfigurationError: ``workers`` is not positive.
    """

    name = "regorus"

    def __init__(self, policy: PolicySet | None = None, *, workers: int = 2,
                 coverage: bool = False) -> None:
        if workers < 1:
            raise ConfigurationError("RegorusEngine needs at least one worker thread")
        self._lock = threading.Lock()
        self._generation = 0
        self._policy: PolicySet | None = None
        self._coverage = coverage
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=_worker, args=(self._jobs, coverage), daemon=True,
                             name=f"fieldguard-regorus-{i}")
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()
        # Stop the workers when the engine is collected or the process exits;
        # they hold only the queue, never the engine.
        self._finalizer = weakref.finalize(self, _stop_workers, self._jobs, workers)
        if policy is not None:
            self.load(policy)

    @property
    def revision(self) -> str:
        return self._policy.revision if self._policy else ""

    @property
    def policy(self) -> PolicySet | None:
        """The policy now serving."""
        return self._policy

    def load(self, policy: PolicySet) -> None:
        policy = policy.without_tests() if not self._coverage else policy
        # Compile here first: a broken policy raises before anything is
        # swapped. This interpreter is created and dropped on this thread.
        compile_regorus(policy)
        with self._lock:
            self._generation += 1
            self._policy = policy

    def _submit(self, path: str, input: Mapping[str, Any], notify: Any = None) -> _Job:
        with self._lock:
            generation, policy = self._generation, self._policy
        if policy is None:
            raise EngineUnavailable("no policy loaded", engine=self.name, path=path)
        if not self._finalizer.alive:
            raise EngineUnavailable("engine is closed", engine=self.name, path=path)
        job = _Job(generation, policy, path, input)
        job.notify = notify
        self._jobs.put(job)
        return job

    def evaluate(
        self, path: str, input: Mapping[str, Any], *, decision_id: str | None = None
    ) -> Decision:
        start = time.perf_counter_ns()
        try:
            value = self._submit(path, input).wait()
        except Exception as exc:
            return self._decision(path, decision_id, start, error=exc)
        return self._decision(path, decision_id, start, value=value)

    def _decision(self, path: str, decision_id: str | None, start: int, *,
                  value: Any = UNDEFINED_VALUE, error: BaseException | None = None) -> Decision:
        did = decision_id or new_decision_id()
        revision = self.revision
        if error is not None:
            return Decision.unavailable(
                path, clean_error(str(error)) or type(error).__name__, revision=revision,
                decision_id=did, engine=self.name, eval_ns=time.perf_counter_ns() - start,
            )
        if value is UNDEFINED_VALUE:
            return Decision.undefined(path, revision=revision, decision_id=did,
                                      engine=self.name, eval_ns=time.perf_counter_ns() - start)
        return Decision(
            path=path, outcome=Outcome.VALUE, result=value, revision=revision, decision_id=did,
            engine=self.name, eval_ns=time.perf_counter_ns() - start,
        )

    async def aevaluate(
        self, path: str, input: Mapping[str, Any], *, decision_id: str | None = None
    ) -> Decision:
        start = time.perf_counter_ns()
        try:
            loop = asyncio.get_running_loop()
            ready = loop.create_future()

            def resolve() -> None:
                if not ready.done():  # the awaiting task may have been cancelled
                    ready.set_result(None)

            def wake() -> None:  # on the worker thread
                loop.call_soon_threadsafe(resolve)

            job = self._submit(path, input, wake)
            await ready
            value = job.wait()  # already released: does not block
        except Exception as exc:
            return self._decision(path, decision_id, start, error=exc)
        return self._decision(path, decision_id, start, value=value)

    def health(self) -> None:
        # An undefined probe is healthy: the workers compiled and answered.
        decision = self.evaluate("fieldguard_health_probe", {})
        if decision.outcome is Outcome.UNAVAILABLE:
            raise EngineUnavailable(decision.error or "unavailable", engine=self.name)

    @property
    def worker_threads(self) -> tuple[threading.Thread, ...]:
        """The evaluator threads (for monitoring and tests)."""
        return tuple(self._threads)

    def close(self) -> None:
        """Stop the evaluator threads; each drops its interpreter itself."""
        self._finalizer()
