"""OPA's own Go engine, in process (``opa-embedded://``).

This engine runs the real OPA (``opa-golib-python-bindings``, OPA v1.20) in
the Python process. It is the fidelity oracle of the test suite and the only
engine that can partially evaluate (``compile_filters``).

One ``OpaEngine`` is shared by all threads: the bindings serialise
evaluations behind an internal lock, so there is no per-thread state as in
:mod:`fieldguard.policies.regorus_engine`. A reload compiles into a *new*
``OpaEngine`` and swaps it in only when compilation succeeded, so a broken
module never stops the last good policy from serving.

The package declares Python >= 3.14 but runs on 3.11; install it with::

    pip install --no-deps --ignore-requires-python opa-golib-python-bindings

Example:
    >>> from fieldguard.policies.source import PolicySet
    >>> ps = PolicySet.from_sources([("p.rego", "package p\\nallow if input.ok\\n")])
    >>> e = OpaEmbeddedEngine(ps)
    >>> e.evaluate("p.allow", {"ok": True}).result, e.evaluate("p.allow", {}).outcome.value
    (True, 'undefined')
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from fieldguard.errors import ConfigurationError, EngineUnavailable, PolicyError, PolicyProblem
from fieldguard.policies.decision import Decision, Outcome, new_decision_id
from fieldguard.policies.source import Module, PolicySet

INSTALL_HINT = "pip install --no-deps --ignore-requires-python opa-golib-python-bindings"

# A decision path is a dotted reference chosen by the application. Anything
# else is refused: the bindings keep one prepared query per distinct path
# string, so free-form paths would also grow memory without bound.
DECISION_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

# One located error in OPA's text form, e.g. "b.rego:3: rego_parse_error: …",
# possibly after a "bundle activation failed: 1 error occurred: " prefix.
_OPA_ERROR = re.compile(
    r"^(?:.*?occurred: )?(?P<file>[^\s:][^:]*?):(?P<line>\d+)(?::(?P<col>\d+))?: "
    r"(?P<code>[a-z_]+_error): (?P<msg>.*)$"
)


def _load_bindings() -> Any:
    try:
        from opa_bindings import engine as bindings
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "the opa-embedded:// engine needs OPA's Go engine bindings; install them with "
            f"`{INSTALL_HINT}` (or choose the regorus:// engine)"
        ) from exc
    return bindings


def parse_opa_errors(
    text: str, modules: Sequence[Module] = (), fallback_file: str = "<policy>"
) -> list[PolicyProblem]:
    """Turn an OPA error text into located problems, one per reported error.

    OPA prints ``file:line: code: message`` and, for parse errors, the
    offending source line and a caret under the column. The column is read
    from the caret (OPA shows the line with its indentation removed, so the
    indentation of the module's own line is added back); it is 1 when OPA
    gives no caret.

    Args:
        text: the error message (``OpaError.message``).
        modules: the modules that were compiled, to recover indentation.
        fallback_file: the file named when no location can be read.

    Example:
        >>> msg = ("1 error occurred: b.rego:3: rego_parse_error: unexpected } token"
        ...        "\\n\\tx if { input.a = }\\n\\t                 ^")
        >>> [str(p) for p in parse_opa_errors(msg)]
        ['b.rego:3:18: rego_parse_error: unexpected } token']
    """
    sources = {m.path: m.text.splitlines() for m in modules}
    problems: list[PolicyProblem] = []
    lines = text.splitlines()
    for i, raw in enumerate(lines):
        match = _OPA_ERROR.match(raw.strip())
        if not match:
            continue
        file, line = match["file"], int(match["line"])
        col = int(match["col"]) if match["col"] else 1
        # Parse errors are followed by "\t<source>" and "\t<spaces>^".
        if not match["col"] and i + 2 < len(lines) and lines[i + 2].strip() == "^":
            shown, caret = lines[i + 1][1:], lines[i + 2][1:]
            col = caret.index("^") + 1
            src = sources.get(file, [])
            if 0 < line <= len(src) and src[line - 1].strip() == shown.strip():
                col += len(src[line - 1]) - len(src[line - 1].lstrip())
        problems.append(PolicyProblem(file, line, col, f"{match['code']}: {match['msg']}"))
    if not problems:
        problems.append(PolicyProblem(fallback_file, 1, 1, text.strip() or "policy error"))
    return problems


def compile_opa(policy: PolicySet) -> Any:
    """A new ``OpaEngine`` with ``policy`` loaded and compiled.

    The bindings only parse in ``add_policy``; type checks, unsafe variables
    and rule/data conflicts surface when a query is first prepared. A trivial
    query forces that here, so errors are raised at load time, never on the
    first request.

    Raises:
        ConfigurationError: the bindings are not installed.
        PolicyError: a module does not parse or compile (``file:line:col``).
    """
    bindings = _load_bindings()
    engine = bindings.OpaEngine()
    try:
        problems: list[PolicyProblem] = []
        for module in policy.modules:
            try:
                engine.add_policy(module.path, module.text)
            except bindings.OpaError as exc:
                problems.extend(parse_opa_errors(exc.message, policy.modules, module.path))
        if problems:
            raise PolicyError(problems)
        try:
            if policy.data:
                engine.add_data(dict(policy.data))
            engine.eval_query("true")
        except bindings.OpaError as exc:
            raise PolicyError(parse_opa_errors(exc.message, policy.modules)) from exc
    except BaseException:
        engine.close()
        raise
    return engine


# What the bindings raise for an engine closed by a reload: "closed" when the
# handle was already cleared, "invalid_handle" when the Go side released it.
_CLOSED_CODES = frozenset({"closed", "invalid_handle"})
_MAX_SWAPS = 20


def _close_when_idle(engine: Any) -> None:
    # Evaluations hold the bindings' eval lock; taking it means no call is
    # in flight on the old engine when its native handle is released. A
    # thread that picked up the old engine just before the swap sees
    # "closed" and retries on the new one (see OpaEmbeddedEngine.evaluate).
    lock = getattr(engine, "_eval_lock", None)
    if lock is None:
        engine.close()
        return
    with lock:
        engine.close()


class OpaEmbeddedEngine:
    """OPA's Go engine in process, shared by all threads (see module docs).

    Args:
        policy: the policy to serve; production loads it without
            ``*_test.rego`` modules. May be loaded later with :meth:`load`.
        offload: run :meth:`aevaluate` in a worker thread. Off by default:
            measured on the shipped library (``benchmarks/test_bench_engines.py``),
            a plan decision takes ~1.3-1.6 ms inline and the thread hop adds
            ~0.06-0.3 ms, while buying no throughput, because the bindings
            serialise evaluations of one engine behind a lock anyway. Turn it
            on when the loop must stay responsive during longer evaluations
            (large data, many coordinates) or when sync threads share the
            engine, so the loop would otherwise wait on that lock.

    Raises:
        ConfigurationError: the bindings are not installed.
        PolicyError: ``policy`` does not compile.

    Example:
        >>> from fieldguard.policies.source import PolicySet
        >>> e = OpaEmbeddedEngine(PolicySet.from_sources([("p.rego", "package p\\nx := 1\\n")]))
        >>> e.evaluate("p.x", {}).result
        1
    """

    name = "opa-embedded"

    def __init__(self, policy: PolicySet | None = None, *, offload: bool = False) -> None:
        self._bindings = _load_bindings()  # fail at construction, not per request
        self._offload = offload
        self._load_lock = threading.Lock()
        # (policy, engine) swapped as one reference so a reader never sees
        # the revision of one policy with the engine of another.
        self._state: tuple[PolicySet, Any] | None = None
        if policy is not None:
            self.load(policy)

    @property
    def revision(self) -> str:
        state = self._state
        return state[0].revision if state else ""

    @property
    def policy(self) -> PolicySet | None:
        """The policy now serving."""
        state = self._state
        return state[0] if state else None

    def load(self, policy: PolicySet) -> None:
        """Compile ``policy`` into a fresh OPA engine and swap it in.

        Raises:
            PolicyError: the policy does not compile; the previous policy
                keeps serving.
        """
        policy = policy.without_tests()
        with self._load_lock:
            engine = compile_opa(policy)  # raises before anything is swapped
            old, self._state = self._state, (policy, engine)
        if old is not None:
            _close_when_idle(old[1])

    def evaluate(
        self, path: str, input: Mapping[str, Any], *, decision_id: str | None = None
    ) -> Decision:
        did = decision_id or new_decision_id()
        start = time.perf_counter_ns()
        state = self._state
        revision = state[0].revision if state else ""

        def unavailable(error: str) -> Decision:
            return Decision.unavailable(
                path, error, revision=revision, decision_id=did, engine=self.name,
                eval_ns=time.perf_counter_ns() - start,
            )

        if not DECISION_PATH.match(path):
            return unavailable(f"invalid decision path {path!r}")
        doc = input if isinstance(input, dict) else dict(input)
        # Retried only when a reload swapped engines mid-call, so this ends
        # unless reloads arrive faster than one evaluation.
        for _attempt in range(_MAX_SWAPS):
            if state is None:
                return unavailable("no policy loaded")
            try:
                value = state[1].eval_document(path, doc)
            except self._bindings.OpaUndefinedError:
                return Decision.undefined(
                    path, revision=revision, decision_id=did, engine=self.name,
                    eval_ns=time.perf_counter_ns() - start,
                )
            except self._bindings.OpaError as exc:
                if exc.code in _CLOSED_CODES and self._state is not state:
                    state = self._state  # swapped under us: ask the new engine
                    revision = state[0].revision if state else ""
                    continue
                return unavailable(f"{exc.code}: {exc.message}")
            except (TypeError, ValueError) as exc:  # input that is not JSON
                return unavailable(f"input is not JSON: {exc}")
            return Decision(
                path=path, outcome=Outcome.VALUE, result=value, revision=revision,
                decision_id=did, engine=self.name, eval_ns=time.perf_counter_ns() - start,
            )
        return unavailable(f"policy reloaded {_MAX_SWAPS} times during one evaluation")

    async def aevaluate(
        self, path: str, input: Mapping[str, Any], *, decision_id: str | None = None
    ) -> Decision:
        if self._offload:
            return await asyncio.to_thread(self.evaluate, path, input, decision_id=decision_id)
        return self.evaluate(path, input, decision_id=decision_id)

    def health(self) -> None:
        state = self._state
        if state is None:
            raise EngineUnavailable("no policy loaded", engine=self.name)
        try:
            state[1].eval_query("true")
        except self._bindings.OpaError as exc:
            raise EngineUnavailable(
                f"OPA engine cannot evaluate: {exc.message}", engine=self.name
            ) from exc

    def close(self) -> None:
        with self._load_lock:
            old, self._state = self._state, None
        if old is not None:
            _close_when_idle(old[1])

    def compile_filters(self, query: str, input: Mapping[str, Any] | None = None,
                        **options: Any) -> Any:
        """Partially evaluate ``query`` into a data filter (SQL or UCAST).

        A thin pass-through to ``OpaEngine.compile_filters`` on the policy now
        serving; see its documentation for ``unknowns``, ``target``,
        ``dialect``, ``mappings`` and ``mask_rule``.

        Raises:
            EngineUnavailable: no policy loaded, or OPA could not compile the
                filter (the caller must then not return any rows).

        Example:
            >>> from fieldguard.policies.source import PolicySet
            >>> src = "package f\\ninclude if input.posts.owner == input.user\\n"
            >>> e = OpaEmbeddedEngine(PolicySet.from_sources([("f.rego", src)]))
            >>> e.compile_filters("data.f.include", {"user": "u1"},
            ...                   unknowns=["input.posts"])["query"]
            "WHERE posts.owner = E'u1'"
        """
        state = self._state
        if state is None:
            raise EngineUnavailable("no policy loaded", engine=self.name)
        try:
            return state[1].compile_filters(query, dict(input or {}), **options)
        except self._bindings.OpaError as exc:
            raise EngineUnavailable(
                f"cannot compile filter for {query}: {exc.message}", engine=self.name
            ) from exc
