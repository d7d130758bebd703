"""Hot reload: watch the policy and data directories and swap new policy in.

Compliance edits Rego and YAML while the service runs. The watcher polls
file stats (path, mtime, size, inode) of the ``.rego`` files and data files,
and when anything changed it reloads the whole :class:`PolicySet` and hands
it to :meth:`Engine.load`, which swaps atomically. A broken edit never
reaches production traffic: loading raises :class:`PolicyError`, the last
good policy keeps serving, and the error is reported (``file:line:col:
message``) through the ``on_error`` callback and :mod:`logging` until the
files are fixed.

Polling rather than inotify keeps the watcher portable (container volumes,
network shares, ConfigMap symlink swaps) and deterministic to test:
:meth:`PolicyWatcher.check_now` does one poll synchronously.

Example:
    >>> import pathlib, tempfile
    >>> from fieldguard.policies.regorus_engine import RegorusEngine
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "p.rego").write_text("package p\\nx := 1\\n")
    >>> engine = RegorusEngine()
    >>> watcher = PolicyWatcher(engine, d)
    >>> watcher.check_now(), engine.evaluate("p.x", {}).result
    (True, 1)
    >>> _ = (d / "p.rego").write_text("package p\\nx := \\n")  # a broken edit
    >>> watcher.check_now(), str(watcher.last_error.problems[0].line)
    (False, '3')
    >>> engine.evaluate("p.x", {}).result  # the last good policy still serves
    1
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from fieldguard.errors import ConfigurationError, PolicyError, PolicyProblem
from fieldguard.policies.engine import Engine
from fieldguard.policies.source import DATA_SUFFIXES, PolicySet, load_policy_set

__all__ = ["PolicyWatcher"]

logger = logging.getLogger(__name__)

#: (path, mtime_ns, size, inode) for every watched file, sorted.
Snapshot = tuple[tuple[str, int, int, int], ...]

ErrorCallback = Callable[[PolicyError], None]
ReloadCallback = Callable[[PolicySet], None]
Validator = Callable[[PolicySet], None]


def _regorus_validator(policy: PolicySet) -> None:
    # regorus defers its safety analysis to the first evaluation, so a policy
    # with an unsafe variable would load and then fail every request; run the
    # analysis before the swap so such an edit is refused like a parse error.
    from fieldguard.policies.rego_tests import compile_problems

    problems = compile_problems(policy.without_tests(), "regorus")
    if problems:
        raise PolicyError(problems)


class PolicyWatcher:
    """Reload policy into ``engine`` whenever the watched files change.

    Args:
        engine: the engine to load into (its ``load`` swaps atomically).
        rego_dir: the Rego directory (``rego``), searched recursively.
        data_dir: the policy data directory (``policies``) or None.
        interval: seconds between polls of the background thread.
        on_error: called with the :class:`PolicyError` of a failed reload.
        on_reload: called with the new :class:`PolicySet` after a swap.
        validate: extra check run before the swap; raise :class:`PolicyError`
            to refuse. Defaults to regorus' full analysis for the regorus
            engine and nothing for others (they validate in ``load``).

    Attributes:
        last_error: the error of the latest reload attempt, None once a
            reload succeeds.
        revision: the revision of the policy the watcher last swapped in
            (the engine's revision before the first swap).
        reloads: how many times a new policy was swapped in.

    Example:
        >>> from fieldguard.policies.regorus_engine import RegorusEngine
        >>> with PolicyWatcher(RegorusEngine(), "rego", "policies",
        ...                    interval=2.0) as watcher:  # doctest: +SKIP
        ...     serve_forever()
    """

    def __init__(
        self,
        engine: Engine,
        rego_dir: str | Path,
        data_dir: str | Path | None = None,
        *,
        interval: float = 1.0,
        on_error: ErrorCallback | None = None,
        on_reload: ReloadCallback | None = None,
        validate: Validator | None = None,
    ) -> None:
        if interval <= 0:
            raise ConfigurationError(f"reload interval must be positive, not {interval!r}")
        self.engine = engine
        self.rego_dir = Path(rego_dir)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.interval = interval
        self.on_error = on_error
        self.on_reload = on_reload
        if validate is None and getattr(engine, "name", "") == "regorus":
            validate = _regorus_validator
        self.validate = validate
        self.last_error: PolicyError | None = None
        self.reloads = 0
        self._revision = engine.revision
        # None = never polled: the first poll always tries a load, so a
        # watcher on a fresh engine also does the initial load.
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def revision(self) -> str:
        """The revision now serving, as far as this watcher knows."""
        return self._revision

    # -- polling -----------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Stat every watched file; a changed tuple means something changed.

        Stats, not contents, so a poll costs a directory walk. On file
        systems with coarse timestamps a same-size rewrite within one tick
        can go unnoticed until the next change; :meth:`check_now` with
        ``force=True`` reloads regardless.
        """
        paths: list[Path] = []
        if self.rego_dir.is_file():
            paths.append(self.rego_dir)
        elif self.rego_dir.is_dir():
            paths.extend(self.rego_dir.rglob("*.rego"))
        if self.data_dir is not None and self.data_dir.is_dir():
            paths.extend(p for p in self.data_dir.iterdir() if p.suffix in DATA_SUFFIXES)
        entries = []
        for path in paths:
            try:
                st = path.stat()
            except OSError:  # deleted between the walk and the stat
                continue
            entries.append((str(path), st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(sorted(entries))

    def check_now(self, *, force: bool = False) -> bool:
        """Poll once; reload when files changed (or ``force``).

        Returns:
            True when a new policy was swapped in.

        Example:
            >>> watcher.check_now()  # doctest: +SKIP
            False
        """
        with self._lock:  # the thread and a direct caller must not interleave
            snap = self.snapshot()
            if not force and snap == self._snapshot:
                return False
            self._snapshot = snap
            return self._reload()

    def _reload(self) -> bool:
        try:
            policy = load_policy_set(self.rego_dir, self.data_dir)
            if policy.revision == self._revision:
                # Touched but identical (or only *_test.rego changed), or a
                # broken edit was reverted: what serves is already right.
                if self.last_error is not None:
                    logger.info("policy files fixed; revision %s keeps serving", self._revision)
                self.last_error = None
                return False
            if self.validate is not None:
                self.validate(policy)
            self.engine.load(policy)
        except PolicyError as exc:
            self._failed(exc)
            return False
        except Exception as exc:
            # An engine that cannot be reached (OPA server down) must not
            # kill the watcher; report it located at the policy directory.
            problem = PolicyProblem(str(self.rego_dir), 1, 1, f"reload failed: {exc}")
            self._failed(PolicyError([problem]))
            return False
        previous, self._revision = self._revision, policy.revision
        self.last_error = None
        self.reloads += 1
        logger.info("policy reloaded: %s -> %s", previous or "(none)", policy.revision)
        if self.on_reload is not None:
            try:
                self.on_reload(policy)
            except Exception:
                logger.exception("policy reload callback failed")
        return True

    def _failed(self, error: PolicyError) -> None:
        repeated = self.last_error is not None and self.last_error.problems == error.problems
        self.last_error = error
        if not repeated:  # one report per distinct breakage, not one per poll
            for problem in error.problems or (PolicyProblem(str(self.rego_dir), 1, 1, str(error)),):
                logger.error("policy reload failed, keeping revision %s: %s",
                             self._revision or "(none)", problem)
        if self.on_error is not None:
            try:
                self.on_error(error)
            except Exception:
                logger.exception("policy error callback failed")

    # -- background thread -------------------------------------------------

    def start(self) -> PolicyWatcher:
        """Poll in a daemon thread every ``interval`` seconds (first poll now).

        Raises:
            ConfigurationError: the watcher is already running.
        """
        if self._thread is not None and self._thread.is_alive():
            raise ConfigurationError("policy watcher already running")
        self._stop.clear()
        self.check_now()
        self._thread = threading.Thread(
            target=self._run, name=f"fieldguard-reload-{os.getpid()}", daemon=True
        )
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check_now()
            except Exception:  # never let the watcher thread die silently
                logger.exception("policy watcher poll failed")

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the thread and wait up to ``timeout`` seconds for it."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> PolicyWatcher:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
