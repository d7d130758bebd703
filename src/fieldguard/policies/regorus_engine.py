"""The embedded default engine: regorus, a Rust Rego interpreter.

A regorus ``Engine`` is bound to the thread that created it (it panics when
used from another), so this engine keeps one compiled interpreter per thread,
built lazily from the current immutable :class:`PolicySet`. A reload bumps a
generation counter; each thread rebuilds on its next evaluation. Evaluations
take microseconds, so :meth:`RegorusEngine.aevaluate` runs inline rather than
paying a thread hop.

Example:
    >>> from fieldguard.policies.source import PolicySet
    >>> ps = PolicySet.from_sources([("p.rego", "package p\\nallow if input.ok\\n")])
    >>> e = RegorusEngine(ps)
    >>> e.evaluate("p.allow", {"ok": True}).result, e.evaluate("p.allow", {}).outcome.value
    (True, 'undefined')
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import regorus

from fieldguard.errors import EngineUnavailable, PolicyError, PolicyProblem
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


@contextmanager
def quiet_backtraces() -> Iterator[None]:
    # With RUST_BACKTRACE set, regorus symbolises a backtrace for every
    # error, which makes a failing evaluation orders of magnitude slower.
    saved = os.environ.pop("RUST_BACKTRACE", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["RUST_BACKTRACE"] = saved


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


# Interpreters live in a module-level thread-local: each thread's entries are
# dropped by that thread (at its exit, or when it prunes entries of engines
# that were garbage-collected). An instance-level threading.local would drop
# every thread's interpreter on whichever thread collects the instance, which
# regorus refuses ("unsendable, but is being dropped on another thread").
_THREAD = threading.local()


def _thread_cache() -> dict[int, tuple[weakref.ref[Any], int, Any]]:
    cache: dict[int, tuple[weakref.ref[Any], int, Any]] | None = getattr(_THREAD, "engines", None)
    if cache is None:
        cache = {}
        _THREAD.engines = cache
    return cache


class RegorusEngine:
    """Embedded engine, one interpreter per thread (see module docs).

    Args:
        policy: the policy to serve; may be loaded later with :meth:`load`.
        coverage: record coverage (``fieldguard test --coverage``).
    """

    name = "regorus"

    def __init__(self, policy: PolicySet | None = None, *, coverage: bool = False) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._policy: PolicySet | None = None
        self._coverage = coverage
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
        engine = compile_regorus(policy)  # raises before anything is swapped
        if self._coverage:
            engine.set_enable_coverage(True)
        with self._lock:
            self._generation += 1
            self._policy = policy
            self._store(self._generation, engine)

    def _store(self, generation: int, engine: Any) -> None:
        cache = _thread_cache()
        for key in [k for k, (ref, _, _) in cache.items() if ref() is None]:
            del cache[key]  # engines of collected instances, dropped on their thread
        cache[id(self)] = (weakref.ref(self), generation, engine)

    def thread_engine(self) -> Any:
        """This thread's interpreter for the current policy (built on demand).

        Raises:
            EngineUnavailable: no policy has been loaded.
        """
        entry = _thread_cache().get(id(self))
        generation, policy = self._generation, self._policy
        if entry is not None and entry[0]() is self and entry[1] == generation:
            return entry[2]
        if policy is None:
            raise EngineUnavailable("no policy loaded", engine=self.name)
        engine = compile_regorus(policy)
        if self._coverage:
            engine.set_enable_coverage(True)
        self._store(generation, engine)
        return engine

    def evaluate(
        self, path: str, input: Mapping[str, Any], *, decision_id: str | None = None
    ) -> Decision:
        did = decision_id or new_decision_id()
        revision = self.revision
        start = time.perf_counter_ns()
        try:
            engine = self.thread_engine()
            with quiet_backtraces():
                engine.set_input(input)
                value = evaluate_json(engine, path)
        except Exception as exc:
            return Decision.unavailable(
                path, clean_error(str(exc)) or type(exc).__name__, revision=revision,
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
        return self.evaluate(path, input, decision_id=decision_id)

    def health(self) -> None:
        self.thread_engine()

    def close(self) -> None:
        # Only this thread's interpreter can be dropped here; the others go
        # when their threads end or prune.
        _thread_cache().pop(id(self), None)
