"""The ``fieldguard`` command: check, test, evaluate and bundle policies.

Every subcommand is one entry in :data:`COMMANDS` (name → :class:`Command`),
so adding ``audit``, ``replay`` or ``serve`` means writing two functions and
registering them. User mistakes (a missing directory, bad JSON input, a
policy that does not compile) are reported on stderr as one line each,
located as ``file:line:col: message`` where possible, never as a Python
traceback.

Exit codes: 0 success; 1 the policy is broken or tests failed; 2 bad usage
or input, and for ``eval`` a decision that is undefined or unavailable
(which never means allow).

Example:
    >>> main(["check", "no-such-dir"])  # doctest: +SKIP
    no-such-dir:1:1: no such policy directory
    1
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from fieldguard.errors import FieldGuardError, PolicyError, PolicyProblem
from fieldguard.policies.decision import Decision, Outcome
from fieldguard.policies.engine import DEFAULT_ENGINE_URL, engine_from_url
from fieldguard.policies.rego_tests import (
    TEST_ENGINES,
    PolicyWarning,
    TestReport,
    TestResult,
    TestStatus,
    check_policy,
    compile_problems,
    package_of,
    run_tests,
)
from fieldguard.policies.source import PolicySet, load_policy_set

__all__ = ["COMMANDS", "Command", "UsageError", "main", "write_bundle"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

DEFAULT_REGO_DIR = "rego"
DEFAULT_DATA_DIR = "policies"
DEFAULT_DECISION = "fieldguard.plan"


class UsageError(FieldGuardError):
    """The command line or its input is wrong (exit code 2)."""

    code = "USAGE_ERROR"


@dataclass(frozen=True)
class Command:
    """One subcommand.

    Attributes:
        name: the word after ``fieldguard``.
        help: one line for ``fieldguard --help``.
        configure: adds the subcommand's arguments to its parser.
        run: does the work and returns the exit code.

    Example:
        >>> def hello(args: argparse.Namespace) -> int:
        ...     print("hello")
        ...     return 0
        >>> COMMANDS["hello"] = Command("hello", "say hello", lambda p: None, hello)
        >>> main(["hello"])
        hello
        0
        >>> del COMMANDS["hello"]
    """

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


#: Every subcommand by name; :func:`main` builds its parser from this.
COMMANDS: dict[str, Command] = {}


def command(
    name: str, help: str, configure: Callable[[argparse.ArgumentParser], None]
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register the decorated function as subcommand ``name``."""

    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = Command(name, help, configure, run)
        return run

    return register


# -- shared helpers --------------------------------------------------------


def _err(*lines: object) -> None:
    for line in lines:
        print(line, file=sys.stderr)


def _policy_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dir", nargs="?", default=DEFAULT_REGO_DIR, metavar="DIR",
        help=f"Rego directory or file (default: {DEFAULT_REGO_DIR})",
    )
    parser.add_argument(
        "--data", metavar="DIR", default=None,
        help=f"policy data directory (default: {DEFAULT_DATA_DIR} when it exists)",
    )


def _data_dir(args: argparse.Namespace) -> str | None:
    # An explicit --data must exist (load_policy_set reports it); the default
    # is optional so that a directory of plain Rego works without flags.
    if args.data is not None:
        return str(args.data)
    return DEFAULT_DATA_DIR if Path(DEFAULT_DATA_DIR).is_dir() else None


def _load(args: argparse.Namespace, *, include_tests: bool = False) -> PolicySet:
    return load_policy_set(args.dir, _data_dir(args), include_tests=include_tests)



def _print_findings(findings: Iterable[object]) -> tuple[int, int]:
    errors = warnings = 0
    for finding in findings:
        _err(finding)
        if isinstance(finding, PolicyWarning):
            warnings += 1
        else:
            errors += 1
    return errors, warnings


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# -- check -----------------------------------------------------------------


def _check_args(parser: argparse.ArgumentParser) -> None:
    _policy_args(parser)
    parser.add_argument(
        "--engine", metavar="URL", default=DEFAULT_ENGINE_URL,
        help="compile on this engine: regorus:// (default), opa-embedded:// or "
        "opa+http://host:port (pushes the policy)",
    )


@command("check", "compile policies and data; report errors as file:line:col", _check_args)
def cmd_check(args: argparse.Namespace) -> int:
    """``fieldguard check``: exit 1 when anything does not compile."""
    policy = _load(args, include_tests=True)
    production = policy.without_tests()
    remote = args.engine.startswith(("opa+http", "opa+https"))
    # Test modules are compiled too (a broken test is a broken file), except
    # on a remote server, which must never be sent test modules.
    errors, warnings = _print_findings(check_policy(production if remote else policy, args.engine))
    modules = len(production.modules)
    tests = len(policy.modules) - modules
    if errors:
        _err(f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}")
        return EXIT_FAILED
    data_files = len([f for f in policy.files if f.suffix != ".rego"])
    print(
        f"ok: {_plural(modules, 'module')} (+{tests} test), {_plural(data_files, 'data file')}, "
        f"{_plural(warnings, 'warning')}; revision {production.revision}"
    )
    return EXIT_OK


# -- test ------------------------------------------------------------------


def _test_args(parser: argparse.ArgumentParser) -> None:
    _policy_args(parser)
    parser.add_argument(
        "--engine", choices=TEST_ENGINES, default="regorus",
        help="engine to run the tests on (default: regorus)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="list every test")
    parser.add_argument("--coverage", action="store_true", help="report line coverage")
    parser.add_argument(
        "--run", metavar="REGEX", default=None,
        help="only tests whose path (data.pkg.test_x) matches REGEX",
    )


_LABEL = {
    TestStatus.PASSED: "PASS",
    TestStatus.FAILED: "FAIL",
    TestStatus.ERROR: "ERROR",
    TestStatus.SKIPPED: "SKIP",
}


def _print_result(result: TestResult, out: TextIO) -> None:
    ms = result.duration_ns / 1e6
    print(f"{_LABEL[result.status]:5} {result.case.path} ({result.location}, {ms:.2f}ms)",
          file=out)
    if result.error:
        print(f"      {result.error}", file=out)
    for line in result.prints:
        print(f"      print: {line}", file=out)


def _print_report(report: TestReport, verbose: bool, out: TextIO) -> None:
    shown = [r for r in report.results
             if verbose or r.status in (TestStatus.FAILED, TestStatus.ERROR)]
    for result in shown:
        _print_result(result, out)
    if report.coverage is not None:
        print("coverage:", file=out)
        for f in report.coverage.files:
            missing = ", ".join(str(n) for n in f.not_covered)
            tail = f" (not covered: {missing})" if missing else ""
            print(f"  {f.path}: {f.percent:.1f}%{tail}", file=out)
        print(f"  total: {report.coverage.percent:.1f}%", file=out)
    if shown or report.coverage is not None:
        print("-" * 40, file=out)
    print(report.summary(), file=out)


@command("test", "run the Rego test_* rules, like opa test", _test_args)
def cmd_test(args: argparse.Namespace) -> int:
    """``fieldguard test``: exit 1 when a test fails or errors, or none ran."""
    policy = _load(args, include_tests=True)
    report = run_tests(policy, engine=args.engine, run=args.run, coverage=args.coverage)
    if not report.results:
        # A test gate that silently passes because of a typo is worse than none.
        what = f"matching {args.run!r}" if args.run else f"in {args.dir}"
        _err(f"fieldguard: no tests found {what}")
        return EXIT_FAILED
    _print_report(report, args.verbose, sys.stdout)
    return EXIT_OK if report.ok else EXIT_FAILED


# -- eval ------------------------------------------------------------------


def _eval_args(parser: argparse.ArgumentParser) -> None:
    _policy_args(parser)
    parser.add_argument(
        "--input", "-i", metavar="FILE", required=True,
        help="input document (JSON, or YAML by suffix); - reads stdin",
    )
    parser.add_argument(
        "--path", default=DEFAULT_DECISION,
        help=f"decision path, dotted (default: {DEFAULT_DECISION})",
    )
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON")
    parser.add_argument(
        "--engine", metavar="URL", default=DEFAULT_ENGINE_URL,
        help="regorus:// (default), opa-embedded:// or opa+http://host:port",
    )


def read_input(spec: str) -> Mapping[str, Any]:
    """Read a decision input from a file (``-`` = stdin).

    Raises:
        UsageError: unreadable, not JSON/YAML, or not an object; JSON
            errors are located as ``file:line:col``.
    """
    name = "<stdin>" if spec == "-" else spec
    try:
        text = sys.stdin.read() if spec == "-" else Path(spec).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read input {name}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"cannot read input {name}: not UTF-8 text") from exc
    try:
        value = yaml.safe_load(text) if spec.endswith((".yaml", ".yml")) else json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{name}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"{name}: invalid YAML: {exc}") from exc
    if not isinstance(value, dict):
        raise UsageError(f"{name}: the input must be a JSON object, not {type(value).__name__}")
    return value


def _effect_line(coordinate: str, spec: Any) -> str:
    if not isinstance(spec, Mapping):
        return f"  {coordinate}: {json.dumps(spec)}"
    effect = str(spec.get("effect", "?"))
    if spec.get("mask"):
        effect += f" ({spec['mask']})"
    reason = f"  {spec['reason']}" if spec.get("reason") else ""
    return f"  {coordinate:<28} {effect:<16}{reason}".rstrip()


def _reason_lines(reasons: Any) -> list[str]:
    lines = []
    for r in reasons if isinstance(reasons, list) else []:
        if isinstance(r, Mapping):
            lines.append(f"  {r.get('code', '?')}: {r.get('message', '')}".rstrip(": "))
        else:
            lines.append(f"  {r}")
    return lines


def format_decision(decision: Decision) -> str:
    """A decision for people: outcome, status, reasons and per-field effects.

    Results shaped like the plan or objects contract get a summary; any
    other value is shown as indented JSON.

    Example:
        >>> d = Decision(path="fieldguard.plan", outcome=Outcome.VALUE, revision="r1",
        ...              engine="regorus", decision_id="d1",
        ...              result={"outcome": "deny", "status": 403, "allow": False,
        ...                      "reasons": [{"code": "anon", "message": "log in"}]})
        >>> print(format_decision(d))
        fieldguard.plan: deny (status 403, allow false)
        reasons:
          anon: log in
        revision r1 · engine regorus · decision d1 · 0.000 ms
    """
    result = decision.result
    lines: list[str] = []
    if isinstance(result, Mapping) and "outcome" in result:
        head = f"{decision.path}: {result.get('outcome')} (status {result.get('status', '?')}"
        head += f", allow {json.dumps(result.get('allow'))}"
        if result.get("retry_after"):
            head += f", retry after {result['retry_after']}s"
        lines.append(head + ")")
        if reasons := _reason_lines(result.get("reasons")):
            lines += ["reasons:", *reasons]
        fields = result.get("fields")
        if isinstance(fields, Mapping) and fields:
            lines.append("fields:")
            lines += [_effect_line(c, fields[c]) for c in sorted(fields)]
        limits = result.get("limits")
        if isinstance(limits, Mapping) and limits:
            lines.append("limits: " + " ".join(f"{k}={limits[k]}" for k in sorted(limits)))
        charges = result.get("charges")
        if isinstance(charges, list) and charges:
            lines.append("charges:")
            for c in charges:
                if isinstance(c, Mapping):
                    lines.append(
                        f"  {c.get('quota')} {c.get('scope')}:{c.get('key')} "
                        f"limit {c.get('limit')} {c.get('measure')} per {c.get('window_seconds')}s"
                    )
    elif isinstance(result, Mapping) and isinstance(result.get("objects"), list):
        lines.append(f"{decision.path}: {_plural(len(result['objects']), 'object')}")
        for i, obj in enumerate(result["objects"]):
            if not isinstance(obj, Mapping):
                lines.append(f"  [{i}] {json.dumps(obj)}")
                continue
            lines.append(f"  [{i}] visible {json.dumps(obj.get('visible'))}")
            fields = obj.get("fields")
            if isinstance(fields, Mapping):
                lines += ["  " + _effect_line(c, fields[c]) for c in sorted(fields)]
    else:
        lines.append(f"{decision.path}:")
        lines.append(json.dumps(result, indent=2, sort_keys=True))
    lines.append(
        f"revision {decision.revision or '?'} · engine {decision.engine} · "
        f"decision {decision.decision_id} · {decision.eval_ns / 1e6:.3f} ms"
    )
    return "\n".join(lines)


@command("eval", "evaluate one decision and show why", _eval_args)
def cmd_eval(args: argparse.Namespace) -> int:
    """``fieldguard eval``: exit 2 when the decision is undefined or unavailable."""
    data = read_input(args.input)
    policy = _load(args).without_tests()
    engine = engine_from_url(args.engine, policy)
    try:
        decision = engine.evaluate(args.path.removeprefix("data."), data)
    finally:
        engine.close()
    if decision.outcome is Outcome.UNDEFINED:
        _err(f"{decision.path}: undefined (no rule produced a value; "
             "fieldguard fails closed and releases nothing)")
        return EXIT_USAGE
    if decision.outcome is Outcome.UNAVAILABLE:
        _err(f"{decision.path}: unavailable ({decision.error}; "
             "fieldguard fails closed and releases nothing)")
        return EXIT_USAGE
    if args.json:
        print(json.dumps(decision.result, indent=2, sort_keys=True))
    else:
        print(format_decision(decision))
    return EXIT_OK


# -- bundle ----------------------------------------------------------------


@dataclass(frozen=True)
class BundleInfo:
    """What :func:`write_bundle` wrote.

    Attributes:
        path: the bundle file.
        revision: the manifest revision.
        roots: the manifest roots.
        files: the member names, as OPA reads them.
    """

    path: Path
    revision: str
    roots: tuple[str, ...]
    files: tuple[str, ...]


def _bundle_roots(policy: PolicySet) -> tuple[str, ...]:
    roots: set[str] = set(policy.data)
    for module in policy.modules:
        package = package_of(module)
        if package:
            roots.add(package.split(".", 1)[0])
    return tuple(sorted(roots))


def _member_name(module_path: str, rego_root: Path) -> str:
    path = Path(module_path).resolve()
    root = rego_root.resolve()
    if root.is_file():
        return "/" + path.name
    try:
        return "/" + path.relative_to(root).as_posix()
    except ValueError:  # modules from elsewhere (from_sources): keep their own path
        return "/" + Path(module_path).as_posix().lstrip("/")


def write_bundle(
    policy: PolicySet, rego_root: str | Path, output: str | Path, *, revision: str | None = None
) -> BundleInfo:
    """Write ``policy`` (without tests) as an OPA bundle (``.tar.gz``).

    The layout is what ``opa build`` writes: ``/.manifest`` (``revision``,
    ``roots``, ``rego_version``), ``/data.json`` with the whole base
    document (``{"policy": {...}}``), and each module under its path
    relative to ``rego_root``. Members are sorted with fixed timestamps and
    owners, so the same policy always produces the same bytes.

    Args:
        policy: the policy to ship; ``*_test.rego`` modules are left out.
        rego_root: the directory module paths are made relative to.
        output: the file to write (replaced atomically).
        revision: the manifest revision; defaults to the policy revision.

    Example:
        >>> ps = PolicySet.from_sources([("p.rego", "package p\\nx := 1\\n")], {"policy": {}})
        >>> out = Path(tempfile.mkdtemp()) / "bundle.tar.gz"
        >>> info = write_bundle(ps, ".", out, revision="v1")
        >>> info.roots, info.files
        (('p', 'policy'), ('/.manifest', '/data.json', '/p.rego'))
    """
    production = policy.without_tests()
    root = Path(rego_root)
    roots = _bundle_roots(production)
    manifest: dict[str, Any] = {
        "revision": revision or production.revision,
        "roots": list(roots),
        "rego_version": 1,
        "metadata": {"fieldguard": {"policy_revision": production.revision}},
    }
    members: dict[str, bytes] = {
        "/.manifest": json.dumps(manifest, indent=2, sort_keys=True).encode(),
        "/data.json": json.dumps(production.data, indent=2, sort_keys=True).encode(),
    }
    for module in production.modules:
        name = _member_name(module.path, root)
        if name in members:  # only possible for in-memory sets with clashing paths
            raise PolicyError([PolicyProblem(module.path, 1, 1, f"duplicate bundle path {name}")])
        members[name] = module.text.encode()

    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".bundle-", suffix=".tar.gz", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, mtime=0
        ) as gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(members):
                body = members[name]
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(body), 0o644, 0
                tar.addfile(info, io.BytesIO(body))
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return BundleInfo(out, str(manifest["revision"]), roots, tuple(sorted(members)))


def _bundle_args(parser: argparse.ArgumentParser) -> None:
    _policy_args(parser)
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="bundle file to write, e.g. bundle.tar.gz")
    parser.add_argument("--revision", default=None,
                        help="manifest revision (default: the policy revision)")


@command("bundle", "build an OPA bundle (.tar.gz) for OPA servers", _bundle_args)
def cmd_bundle(args: argparse.Namespace) -> int:
    """``fieldguard bundle``: refuses (exit 1) to bundle a policy that does not compile."""
    policy = _load(args).without_tests()
    problems = compile_problems(policy)
    if problems:
        _print_findings(problems)
        _err(f"{_plural(len(problems), 'error')}; no bundle written")
        return EXIT_FAILED
    info = write_bundle(policy, args.dir, args.output, revision=args.revision)
    print(f"wrote {info.path}: revision {info.revision}, roots {', '.join(info.roots)}, "
          f"{_plural(len(info.files) - 2, 'module')}")
    return EXIT_OK


# -- main ------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="fieldguard",
        description="Policy-as-code enforcement for APIs: check, test, evaluate and "
        "bundle the Rego policies and the data compliance edits.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.configure(p)
        p.set_defaults(handler=cmd.run)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fieldguard")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``fieldguard`` with ``argv`` (default: the process arguments).

    Returns:
        The exit code (see the module docs); never raises for user mistakes.

    Example:
        >>> main(["test", "rego", "--data", "policies"])  # doctest: +SKIP
        12 passed, 0 failed
        0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return int(args.handler(args))
    except UsageError as exc:
        _err(f"fieldguard {args.command}: {exc.message}")
        return EXIT_USAGE
    except PolicyError as exc:
        _print_findings(exc.problems)
        _err(f"{_plural(len(exc.problems), 'error')}")
        return EXIT_FAILED
    except FieldGuardError as exc:
        _err(f"fieldguard {args.command}: {exc.message}")
        return EXIT_FAILED
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _err(f"fieldguard {args.command}: {where}{exc.strerror or exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
