"""Loading policies: Rego modules plus the data files compliance edits.

A :class:`PolicySet` is an immutable snapshot of everything an engine needs:
the Rego modules (``rego/**/*.rego``) and the policy data
(``policies/*.yaml|yml|json``), with a *revision* that is a content hash of
both, so every decision names exactly which policy made it.

Data files are mounted under ``data.policy.<file stem>``: ``policies/
classification.yaml`` becomes ``data.policy.classification``.

Example:
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.rego").write_text("package t\\nx := 1\\n")
    >>> _ = (d / "limits.yaml").write_text("max: 3\\n")
    >>> ps = load_policy_set(d, d)
    >>> ps.data["policy"]["limits"], [Path(m.path).name for m in ps.modules]
    ({'max': 3}, ['a.rego'])
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fieldguard.errors import PolicyError, PolicyProblem

DATA_ROOT = "policy"
DATA_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Module:
    """One Rego module: its path (as shown in errors) and its text."""

    path: str
    text: str

    @property
    def is_test(self) -> bool:
        """True for ``*_test.rego`` files, which only ``fieldguard test`` loads."""
        return self.path.endswith("_test.rego")


@dataclass(frozen=True)
class PolicySet:
    """An immutable snapshot of policy modules and data.

    Attributes:
        modules: the Rego modules, sorted by path.
        data: the base document (``data``), JSON-compatible.
        revision: ``sha256:`` + 16 hex digits of the content hash.
        files: every file read, for the watcher.
    """

    modules: tuple[Module, ...]
    data: Mapping[str, Any]
    revision: str
    files: tuple[Path, ...] = field(default=(), compare=False)

    @classmethod
    def from_sources(
        cls, modules: Iterable[tuple[str, str]], data: Mapping[str, Any] | None = None
    ) -> PolicySet:
        """Build a set from in-memory sources (tests, embedding apps).

        Example:
            >>> ps = PolicySet.from_sources([("p.rego", "package p\\nx := 1\\n")])
            >>> ps.revision.startswith("sha256:")
            True
        """
        mods = tuple(sorted((Module(p, t) for p, t in modules), key=lambda m: m.path))
        base = dict(data or {})
        return cls(mods, base, _revision(mods, base))

    def without_tests(self) -> PolicySet:
        """The same set without ``*_test.rego`` modules (what production loads)."""
        mods = tuple(m for m in self.modules if not m.is_test)
        if len(mods) == len(self.modules):
            return self
        # The revision names what serves: the same production modules give the
        # same revision however they were loaded.
        return PolicySet(mods, self.data, _revision(mods, self.data), self.files)

    @property
    def policy_data(self) -> Mapping[str, Any]:
        """The compliance-edited data (``data.policy``)."""
        value = self.data.get(DATA_ROOT, {})
        return value if isinstance(value, Mapping) else {}


def _revision(modules: Iterable[Module], data: Mapping[str, Any]) -> str:
    h = hashlib.sha256()
    for m in modules:
        h.update(m.path.encode())
        h.update(b"\0")
        h.update(m.text.encode())
        h.update(b"\0")
    h.update(json.dumps(data, sort_keys=True, separators=(",", ":")).encode())
    return "sha256:" + h.hexdigest()[:16]


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _read_data_file(path: Path, shown: str) -> Any:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise PolicyError([PolicyProblem(shown, exc.lineno, exc.colno, exc.msg)]) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        msg = f"{exc.context or ''} {exc.problem or ''}".strip()
        raise PolicyError([PolicyProblem(shown, line, col, msg)]) from exc
    except yaml.YAMLError as exc:
        raise PolicyError([PolicyProblem(shown, 1, 1, str(exc))]) from exc


def load_policy_set(
    rego_dir: str | Path,
    data_dir: str | Path | None = None,
    *,
    include_tests: bool = False,
) -> PolicySet:
    """Read Rego modules from ``rego_dir`` and data files from ``data_dir``.

    Args:
        rego_dir: directory searched recursively for ``*.rego``; a single
            ``.rego`` file works too.
        data_dir: directory of ``*.yaml|yml|json`` data files (not recursive);
            None loads no data.
        include_tests: keep ``*_test.rego`` modules (``fieldguard test``).

    Raises:
        PolicyError: a directory is missing, or a data file does not parse
            (located as ``file:line:col``).
    """
    root = Path(rego_dir)
    if root.is_file():
        rego_files = [root]
    elif root.is_dir():
        rego_files = sorted(root.rglob("*.rego"))
    else:
        raise PolicyError([PolicyProblem(str(root), 1, 1, "no such policy directory")])
    problems: list[PolicyProblem] = []
    modules: list[tuple[str, str]] = []
    for path in rego_files:
        shown = _display(path)
        if not include_tests and shown.endswith("_test.rego"):
            continue
        modules.append((shown, path.read_text(encoding="utf-8")))
    if not modules:
        problems.append(PolicyProblem(str(root), 1, 1, "no .rego files found"))

    data: dict[str, Any] = {}
    data_files: list[Path] = []
    if data_dir is not None:
        ddir = Path(data_dir)
        if not ddir.is_dir():
            problems.append(PolicyProblem(str(ddir), 1, 1, "no such data directory"))
        else:
            data_files = sorted(p for p in ddir.iterdir() if p.suffix in DATA_SUFFIXES)
    for path in data_files:
        shown = _display(path)
        try:
            value = _read_data_file(path, shown)
        except PolicyError as exc:
            problems.extend(exc.problems)
            continue
        if path.stem in data:
            problems.append(PolicyProblem(shown, 1, 1, f"duplicate data key {path.stem!r}"))
        data[path.stem] = value if value is not None else {}
    if problems:
        raise PolicyError(problems)
    base = {DATA_ROOT: data} if data_dir is not None else {}
    ps = PolicySet.from_sources(modules, base)
    return PolicySet(ps.modules, ps.data, ps.revision, tuple(rego_files) + tuple(data_files))
