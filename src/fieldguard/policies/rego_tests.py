"""Rego unit tests (``test_*`` rules) and policy checks, like ``opa test``/``opa check``.

Compliance teams change policy by editing Rego, so the tests that pin what a
policy means must run with the same engines that serve decisions: the
embedded default (regorus) or OPA's own Go engine (``opa-embedded``). A test
is a rule named ``test_*`` with no arguments; it passes when it evaluates to
a defined value other than ``false``. Rules named ``todo_*`` are reported as
skipped, as ``opa test`` does.

:func:`check_policy` compiles a policy set and also warns where a module uses
a builtin the embedded default lacks, because such a policy loads fine and
then fails on the first request that reaches the call.

Example:
    >>> from fieldguard.policies.source import PolicySet
    >>> ps = PolicySet.from_sources([
    ...     ("p.rego", "package p\\nallow if input.ok\\n"),
    ...     ("p_test.rego", "package p_test\\nimport data.p\\n"
    ...      "test_ok if p.allow with input as {\\"ok\\": true}\\n"
    ...      "test_no if p.allow with input as {}\\n"),
    ... ])
    >>> report = run_tests(ps)
    >>> report.summary()
    '1 passed, 1 failed'
    >>> [(r.name, r.status.value, r.location) for r in report.results]
    [('test_ok', 'passed', 'p_test.rego:3'), ('test_no', 'failed', 'p_test.rego:4')]
"""

from __future__ import annotations

import enum
import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import regorus

from fieldguard.errors import ConfigurationError, PolicyError, PolicyProblem
from fieldguard.policies.regorus_engine import (
    clean_error,
    compile_regorus,
    problem_from_error,
    quiet_backtraces,
)
from fieldguard.policies.source import Module, PolicySet

__all__ = [
    "UNSUPPORTED_BUILTIN_PREFIXES",
    "CoverageReport",
    "FileCoverage",
    "PolicyWarning",
    "TestCase",
    "TestReport",
    "TestResult",
    "TestStatus",
    "check_policy",
    "compile_problems",
    "discover_tests",
    "package_of",
    "run_tests",
    "unsupported_builtins",
]

#: Builtin namespaces regorus (the embedded default) does not implement.
UNSUPPORTED_BUILTIN_PREFIXES = ("io.jwt.", "crypto.", "graphql.", "rego.metadata.")

TEST_ENGINES = ("regorus", "opa-embedded")

_REGORUS_UNDEFINED = '"<undefined>"'  # what eval_rule_as_json answers for undefined
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# -- results ---------------------------------------------------------------


class TestStatus(enum.Enum):
    """How one test ended."""

    __test__ = False  # not a pytest test class despite the name

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class TestCase:
    """One discovered ``test_*`` (or ``todo_*``) rule.

    Attributes:
        package: the dotted package, e.g. ``fieldguard.plan_test``.
        name: the rule name, e.g. ``test_anonymous_denied``.
        file: the module path as shown in errors.
        line: the line of the rule's first definition.
    """

    __test__ = False

    package: str
    name: str
    file: str
    line: int

    @property
    def path(self) -> str:
        """The full rule ref as ``opa test`` names it, e.g. ``data.p.test_x``.

        Package parts that are not identifiers are bracketed
        (``data.a["b-c"].test_x``) so the path stays a valid Rego ref.
        """
        parts = [p if _IDENT.fullmatch(p) else json.dumps([p]) for p in self.package.split(".")]
        return "data." + ".".join(parts).replace(".[", "[") + "." + self.name

    @property
    def location(self) -> str:
        """``file:line`` of the rule."""
        return f"{self.file}:{self.line}"

    @property
    def skipped(self) -> bool:
        """True for ``todo_*`` rules, which are listed but not run."""
        return self.name.startswith("todo_")


@dataclass(frozen=True)
class TestResult:
    """The outcome of one test.

    Attributes:
        case: the test that ran.
        status: passed, failed, error or skipped.
        duration_ns: evaluation time in nanoseconds.
        error: the engine's error text for ``ERROR``, else None.
        prints: ``print()`` output captured during the test, ``file:line: text``.
    """

    __test__ = False

    case: TestCase
    status: TestStatus
    duration_ns: int = 0
    error: str | None = None
    prints: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.case.name

    @property
    def package(self) -> str:
        return self.case.package

    @property
    def location(self) -> str:
        return self.case.location

    @property
    def passed(self) -> bool:
        return self.status is TestStatus.PASSED


@dataclass(frozen=True)
class FileCoverage:
    """Line coverage of one module.

    Attributes:
        path: the module path.
        covered: line numbers evaluated at least once.
        not_covered: line numbers that hold rule code but never ran.
    """

    path: str
    covered: tuple[int, ...]
    not_covered: tuple[int, ...]

    @property
    def percent(self) -> float:
        total = len(self.covered) + len(self.not_covered)
        return 100.0 * len(self.covered) / total if total else 100.0


@dataclass(frozen=True)
class CoverageReport:
    """Coverage over the policy modules (test modules are left out).

    Test modules are excluded because their own coverage says nothing about
    which policy lines the tests pin down.
    """

    files: tuple[FileCoverage, ...]

    @property
    def percent(self) -> float:
        covered = sum(len(f.covered) for f in self.files)
        total = covered + sum(len(f.not_covered) for f in self.files)
        return 100.0 * covered / total if total else 100.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-compatible form shaped like ``opa test --coverage``'s report."""
        return {
            "files": {
                f.path: {
                    "covered": list(f.covered),
                    "not_covered": list(f.not_covered),
                    "coverage": round(f.percent, 2),
                }
                for f in self.files
            },
            "coverage": round(self.percent, 2),
        }


@dataclass(frozen=True)
class TestReport:
    """Everything one test run produced.

    Attributes:
        results: one result per discovered test, in file and line order.
        engine: the engine the tests ran on.
        coverage: the coverage report when asked for, else None.
    """

    __test__ = False

    results: tuple[TestResult, ...]
    engine: str
    coverage: CoverageReport | None = None

    def count(self, status: TestStatus) -> int:
        return sum(1 for r in self.results if r.status is status)

    @property
    def ok(self) -> bool:
        """True when no test failed or errored (skipped tests do not count)."""
        return not any(r.status in (TestStatus.FAILED, TestStatus.ERROR) for r in self.results)

    def summary(self) -> str:
        """``N passed, N failed`` plus errors and skipped tests when there are any."""
        text = f"{self.count(TestStatus.PASSED)} passed, {self.count(TestStatus.FAILED)} failed"
        if errors := self.count(TestStatus.ERROR):
            text += f", {errors} errors"
        if skipped := self.count(TestStatus.SKIPPED):
            text += f", {skipped} skipped"
        return text


@dataclass(frozen=True)
class PolicyWarning:
    """A located problem that does not stop a policy from loading."""

    file: str
    line: int
    col: int
    message: str
    code: str = field(default="warning", compare=False)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: warning: {self.message}"


# -- discovery -------------------------------------------------------------

_TEST_PREFIXES = ("test_", "todo_")
# Fallback for modules regorus cannot parse on its own: a rule head at the
# start of a line, then `if`, `{`, `:=`, `=` or the end of the line.
_PACKAGE_LINE = re.compile(r"^package\s+(?P<pkg>[^\s#]+)", re.MULTILINE)
_RULE_LINE = re.compile(r"^(?P<name>(?:test|todo)_\w*)\s*(?:if\b|\{|:=|=(?!=)|$)", re.MULTILINE)
_QUOTED_PART = re.compile(r'\["([^"\]]+)"\]')


def _ref_parts(node: Mapping[str, Any]) -> list[str] | None:
    """Flatten a regorus AST ref (``a.b["c"]``) into its parts."""
    kind, body = next(iter(node.items()))
    if kind == "Var":
        return [str(body["value"])]
    if kind == "RefDot":
        head = _ref_parts(body["refr"])
        return None if head is None else [*head, str(body["field"][1])]
    if kind == "RefBrack":
        head = _ref_parts(body["refr"])
        index = body.get("index", {})
        if head is None or "String" not in index:
            return None
        return [*head, str(index["String"]["value"])]
    return None


def _rule_tests(module_ast: Mapping[str, Any], package: str, file: str) -> Iterator[TestCase]:
    for rule in module_ast.get("rules", []):
        spec = rule.get("Spec")
        if not spec:
            continue  # default rules cannot be tests
        head = spec.get("head", {})
        compr = head.get("Compr")  # complete rules; functions and sets are not tests
        if not compr:
            continue
        parts = _ref_parts(compr["refr"])
        if parts is None or len(parts) != 1 or not parts[0].startswith(_TEST_PREFIXES):
            continue
        yield TestCase(package, parts[0], file, int(spec["span"]["line"]))


def _regex_tests(module: Module) -> Iterator[TestCase]:
    pkg = _PACKAGE_LINE.search(module.text)
    if pkg is None:
        return
    package = _QUOTED_PART.sub(r".\1", pkg["pkg"])
    for m in _RULE_LINE.finditer(module.text):
        line = module.text.count("\n", 0, m.start()) + 1
        yield TestCase(package, m["name"], module.path, line)


def package_of(module: Module) -> str | None:
    """The dotted package of ``module`` (``data.`` dropped), None if it has none.

    Example:
        >>> package_of(Module("p.rego", "package fieldguard.plan\\nx := 1\\n"))
        'fieldguard.plan'
    """
    with quiet_backtraces():
        engine = regorus.Engine()
        try:
            engine.add_policy(module.path, module.text)
            (entry,) = json.loads(engine.get_ast_as_json())
            parts = _ref_parts(entry["ast"]["package"]["refr"])
        except Exception:  # unparsable alone: read the package line instead
            pkg = _PACKAGE_LINE.search(module.text)
            return _QUOTED_PART.sub(r".\1", pkg["pkg"]).removeprefix("data.") if pkg else None
    if parts is None:
        return None
    return ".".join(parts[1:] if parts[0] == "data" else parts)


def discover_tests(policy: PolicySet) -> list[TestCase]:
    """Find the ``test_*``/``todo_*`` rules of every module in ``policy``.

    Rules are read from regorus' AST; a module that regorus cannot parse on
    its own falls back to a line scan so that discovery never hides tests.
    A rule defined more than once is one test (at its first line).

    Example:
        >>> ps = PolicySet.from_sources([("t.rego", "package t\\ntest_a if true\\n")])
        >>> [(t.path, t.line) for t in discover_tests(ps)]
        [('data.t.test_a', 2)]
    """
    found: dict[tuple[str, str], TestCase] = {}
    with quiet_backtraces():
        for module in policy.modules:
            cases: Iterable[TestCase]
            engine = regorus.Engine()
            try:
                engine.add_policy(module.path, module.text)
                (entry,) = json.loads(engine.get_ast_as_json())
                ast = entry["ast"]
                parts = _ref_parts(ast["package"]["refr"])
                if parts is None:
                    raise ValueError("unsupported package ref")
                cases = list(_rule_tests(ast, ".".join(parts[1:] if parts[0] == "data" else parts),
                                         module.path))
            except Exception:  # any parse or AST-shape failure: scan the text instead
                cases = list(_regex_tests(module))
            for case in cases:
                found.setdefault((case.package, case.name), case)
    return sorted(found.values(), key=lambda c: (c.file, c.line, c.name))


# -- running ---------------------------------------------------------------


def _passes(value: Any) -> bool:
    # A test passes like a query expression does in OPA: defined and not false.
    return value is not None and value is not False


def _select(cases: Sequence[TestCase], run: str | re.Pattern[str] | None) -> list[TestCase]:
    if run is None:
        return list(cases)
    try:
        pattern = re.compile(run) if isinstance(run, str) else run
    except re.error as exc:
        raise ConfigurationError(f"bad --run pattern {run!r}: {exc}") from exc
    return [c for c in cases if pattern.search(c.path)]


def _merge_lines(
    files: dict[str, tuple[set[int], set[int]]], path: str, covered: Iterable[int],
    not_covered: Iterable[int],
) -> None:
    cov, unc = files.setdefault(path, (set(), set()))
    cov.update(covered)
    unc.update(not_covered)


def _coverage_from(
    files: Mapping[str, tuple[set[int], set[int]]], policy: PolicySet
) -> CoverageReport:
    tests = {m.path for m in policy.modules if m.is_test}
    out = []
    for path in sorted(files):
        if path in tests:
            continue
        cov, unc = files[path]
        out.append(FileCoverage(path, tuple(sorted(cov)), tuple(sorted(unc - cov))))
    return CoverageReport(tuple(out))


def _run_regorus(
    policy: PolicySet, cases: Sequence[TestCase], coverage: bool
) -> tuple[list[TestResult], CoverageReport | None]:
    engine = compile_regorus(policy)
    problems = _regorus_analysis(engine, policy)
    if problems:
        del engine  # not in the traceback: it may be released on another thread
        raise PolicyError(problems)
    engine.set_gather_prints(True)
    if coverage:
        engine.set_enable_coverage(True)
    results = []
    with quiet_backtraces():
        for case in cases:
            start = time.perf_counter_ns()
            error: str | None = None
            try:
                # As JSON: eval_rule cannot return sets of objects to Python.
                raw = engine.eval_rule_as_json(case.path)
                value = None if raw == _REGORUS_UNDEFINED else json.loads(raw)
            except Exception as exc:
                status, error = TestStatus.ERROR, _one_line(clean_error(str(exc)))
            else:
                status = TestStatus.PASSED if _passes(value) else TestStatus.FAILED
            elapsed = time.perf_counter_ns() - start
            prints = tuple(str(p) for p in engine.take_prints())
            results.append(TestResult(case, status, elapsed, error, prints))
    report = None
    if coverage:
        raw = json.loads(engine.get_coverage_report_as_json())
        files: dict[str, tuple[set[int], set[int]]] = {}
        for f in raw.get("files", []):
            _merge_lines(files, f["path"], f.get("covered", []), f.get("not_covered", []))
        report = _coverage_from(files, policy)
    return results, report


def _one_line(text: str) -> str:
    """A regorus error as ``file:line:col: message`` when it carries a location."""
    problem = problem_from_error(text, "")
    return str(problem) if problem.file else problem.message


def _opa_lines(ranges: Iterable[Mapping[str, Any]]) -> set[int]:
    lines: set[int] = set()
    for r in ranges:
        lines.update(range(int(r["start"]["row"]), int(r["end"]["row"]) + 1))
    return lines


def _run_opa(
    policy: PolicySet, cases: Sequence[TestCase], coverage: bool
) -> tuple[list[TestResult], CoverageReport | None]:
    opa, error_type, undefined_type = _opa_compile(policy)
    try:
        prints: list[str] = []
        opa.print_handler = lambda message, location: prints.append(f"{location}: {message}")
        files: dict[str, tuple[set[int], set[int]]] = {}
        results = []
        for case in cases:
            prints.clear()
            start = time.perf_counter_ns()
            error = None
            try:
                value = opa.eval_document(case.path.removeprefix("data."), {}, coverage=coverage)
            except undefined_type:
                status = TestStatus.FAILED
            except error_type as exc:
                status, error = TestStatus.ERROR, str(getattr(exc, "message", exc))
            else:
                status = TestStatus.PASSED if _passes(value) else TestStatus.FAILED
            elapsed = time.perf_counter_ns() - start
            if coverage and opa.last_coverage:
                for path, f in opa.last_coverage.get("files", {}).items():
                    _merge_lines(files, path, _opa_lines(f.get("covered", [])),
                                 _opa_lines(f.get("not_covered", [])))
            results.append(TestResult(case, status, elapsed, error, tuple(prints)))
        return results, (_coverage_from(files, policy) if coverage else None)
    finally:
        opa.close()


def run_tests(
    policy: PolicySet,
    *,
    engine: str = "regorus",
    run: str | re.Pattern[str] | None = None,
    coverage: bool = False,
) -> TestReport:
    """Run the ``test_*`` rules of ``policy`` on ``engine``.

    Args:
        policy: modules and data, *with* the ``*_test.rego`` modules
            (``load_policy_set(..., include_tests=True)``).
        engine: ``regorus`` (the embedded default) or ``opa-embedded``.
        run: only tests whose full path (``data.pkg.test_x``) matches this
            regular expression (``re.search``), like ``opa test --run``.
        coverage: also collect line coverage of the policy modules.

    Raises:
        PolicyError: the policy does not compile (no test can run).
        ConfigurationError: unknown engine, bad ``run`` pattern, or the
            ``opa-embedded`` bindings are not installed.

    Example:
        >>> ps = PolicySet.from_sources([("t.rego", "package t\\ntest_a if 1 == 1\\n")])
        >>> run_tests(ps, run="test_a").summary()
        '1 passed, 0 failed'
    """
    name = engine.removesuffix("://")
    if name not in TEST_ENGINES:
        raise ConfigurationError(
            f"unknown test engine {engine!r}; use one of {', '.join(TEST_ENGINES)}"
        )
    cases = _select(discover_tests(policy), run)
    runnable = [c for c in cases if not c.skipped]
    runner = _run_regorus if name == "regorus" else _run_opa
    results, report = runner(policy, runnable, coverage)
    by_case = {r.case: r for r in results}
    ordered = tuple(by_case.get(c, TestResult(c, TestStatus.SKIPPED)) for c in cases)
    return TestReport(ordered, name, report)


# -- checking --------------------------------------------------------------

_BUILTIN_USE = re.compile(
    r"(?<![\w.])(?P<name>(?:io\.jwt|crypto|graphql|rego\.metadata)\.[A-Za-z_][\w.]*)"
)


def _code_spans(text: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line, code)`` for each line with strings and comments blanked.

    Blanking keeps columns intact, so a builtin named inside a comment or a
    string literal is not reported but real uses keep their exact column.
    """
    in_raw = False
    for lineno, line in enumerate(text.splitlines(), 1):
        out = []
        i, in_str = 0, False
        while i < len(line):
            ch = line[i]
            if in_raw:
                in_raw = ch != "`"
                out.append(" ")
            elif in_str:
                if ch == "\\" and i + 1 < len(line):
                    out.append("  ")
                    i += 2
                    continue
                in_str = ch != '"'
                out.append(" ")
            elif ch == "#":
                break
            elif ch == '"':
                in_str = True
                out.append(" ")
            elif ch == "`":
                in_raw = True
                out.append(" ")
            else:
                out.append(ch)
            i += 1
        yield lineno, "".join(out)


def unsupported_builtins(module: Module) -> list[PolicyWarning]:
    """Warnings for each use of a builtin the embedded default (regorus) lacks.

    Example:
        >>> m = Module("a.rego", 'package a\\n# crypto.x is fine here\\nx := crypto.sha256("s")\\n')
        >>> [str(w) for w in unsupported_builtins(m)]  # doctest: +NORMALIZE_WHITESPACE
        ['a.rego:3:6: warning: crypto.sha256 is not available on the embedded default
          engine (regorus); decisions reaching it are unavailable there']
    """
    warnings = []
    for lineno, code in _code_spans(module.text):
        for m in _BUILTIN_USE.finditer(code):
            warnings.append(PolicyWarning(
                module.path, lineno, m.start() + 1,
                f"{m['name']} is not available on the embedded default engine (regorus); "
                "decisions reaching it are unavailable there",
                code="unsupported-builtin",
            ))
    return warnings


def _regorus_analysis(engine: Any, policy: PolicySet) -> list[PolicyProblem]:
    # regorus parses in add_policy but checks safety (unsafe or undefined
    # variables) only when it first evaluates; a trivial query forces that
    # whole-policy analysis now instead of on the first request.
    with quiet_backtraces():
        try:
            engine.eval_query("true")
        except Exception as exc:
            fallback = policy.modules[0].path if policy.modules else "<policy>"
            return [problem_from_error(str(exc), fallback)]
    return []


# OPA prefixes located errors ("1 error occurred: f.rego:5: rego_parse_error: …").
_OPA_ERROR = re.compile(r"(?:^|\s)(?P<file>[^\s:]+\.rego):(?P<line>\d+): (?P<msg>.+)$")


def _opa_problems(text: str, policy: PolicySet, fallback: str) -> list[PolicyProblem]:
    """Locate OPA errors (``file:line: message`` with a caret line for the column)."""
    sources = {m.path: m.text.splitlines() for m in policy.modules}
    problems = []
    lines = text.splitlines()
    for idx, raw in enumerate(lines):
        m = _OPA_ERROR.search(raw.strip())
        if not m:
            continue
        file, line = m["file"], int(m["line"])
        src = sources.get(file, [])
        indent = 0
        if 0 < line <= len(src):
            indent = len(src[line - 1]) - len(src[line - 1].lstrip(" \t"))
        # OPA gives no column; it prints the offending source line trimmed
        # of indentation with a caret under the column, so add it back.
        caret = 0
        if idx + 2 < len(lines) and lines[idx + 2].strip() == "^":
            caret = lines[idx + 2].lstrip("\t").index("^")
        col = indent + caret + 1
        problems.append(PolicyProblem(file, line, col, m["msg"].strip()))
    return problems or [PolicyProblem(fallback, 1, 1, text.strip() or "OPA error")]


def _opa_compile(policy: PolicySet) -> tuple[Any, type[Exception], type[Exception]]:
    """OPA's engine with ``policy`` loaded and compiled, plus its error types."""
    try:
        from opa_bindings.engine import OpaEngine, OpaError, OpaUndefinedError
    except ImportError as exc:  # an optional extra; see README for the install
        raise ConfigurationError(
            "engine opa-embedded needs opa-golib-python-bindings (pip install --no-deps "
            "--ignore-requires-python opa-golib-python-bindings)"
        ) from exc
    opa = OpaEngine()
    problems: list[PolicyProblem] = []
    try:
        for module in policy.modules:
            try:
                opa.add_policy(module.path, module.text)
            except OpaError as exc:
                problems.extend(_opa_problems(str(exc.message), policy, module.path))
        if not problems:
            if policy.data:
                opa.add_data(dict(policy.data))
            try:
                # OPA type-checks all modules when it first prepares a query.
                opa.eval_query("true", {})
            except OpaError as exc:
                fallback = policy.modules[0].path if policy.modules else "<policy>"
                problems.extend(_opa_problems(str(exc.message), policy, fallback))
    except BaseException:
        opa.close()
        raise
    if problems:
        opa.close()
        raise PolicyError(problems)
    return opa, OpaError, OpaUndefinedError


def compile_problems(policy: PolicySet, engine: str = "regorus") -> list[PolicyProblem]:
    """Compile ``policy`` fully on ``engine`` and return its located problems.

    Unlike loading, this also runs the analysis regorus otherwise defers to
    the first evaluation (unsafe variables), so a broken policy is caught
    before it serves.

    Args:
        policy: the modules and data to compile.
        engine: ``regorus``, ``opa-embedded`` or any engine URL
            (``opa+http://…`` pushes the policy to that server).

    Example:
        >>> bad = PolicySet.from_sources([("b.rego", "package b\\nx if { y }\\n")])
        >>> [str(p) for p in compile_problems(bad)]
        ['b.rego:2:8: use of undefined variable `y` is unsafe']
    """
    name = engine.removesuffix("://")
    try:
        if name == "regorus":
            compiled = compile_regorus(policy)
            return _regorus_analysis(compiled, policy)
        if name == "opa-embedded":
            opa, _, _ = _opa_compile(policy)
            opa.close()
            return []
        from fieldguard.policies.engine import engine_from_url

        remote = engine_from_url(engine, policy)
        remote.close()
        return []
    except PolicyError as exc:
        return list(exc.problems)


def check_policy(
    policy: PolicySet, engine: str = "regorus"
) -> list[PolicyProblem | PolicyWarning]:
    """Compile errors and portability warnings for ``policy``, in file order.

    Args:
        policy: the modules and data to check.
        engine: where to compile (see :func:`compile_problems`).

    Returns:
        :class:`PolicyProblem` for each compile error and
        :class:`PolicyWarning` for each use of a builtin that the embedded
        default lacks (``io.jwt.*``, ``crypto.*``, ``graphql.*``,
        ``rego.metadata.*``); empty when the policy is clean.

    Raises:
        ConfigurationError: the engine cannot be built.

    Example:
        >>> ps = PolicySet.from_sources([("a.rego", "package a\\nx := 1\\n")])
        >>> check_policy(ps)
        []
    """
    found: list[PolicyProblem | PolicyWarning] = list(compile_problems(policy, engine))
    for module in policy.modules:
        found.extend(unsupported_builtins(module))
    return sorted(found, key=lambda p: (p.file, p.line, p.col, isinstance(p, PolicyWarning)))

