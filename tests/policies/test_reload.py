"""Tests for the hot-reload policy watcher."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest

from fieldguard.errors import ConfigurationError, PolicyError
from fieldguard.policies.decision import Outcome
from fieldguard.policies.regorus_engine import RegorusEngine
from fieldguard.policies.reload import PolicyWatcher
from fieldguard.policies.source import PolicySet

GOOD = "package app\n\nlimit := data.policy.limits.max\n"
NEW = "package app\n\nlimit := data.policy.limits.max * 2\n"
BROKEN = "package app\n\nlimit := data.policy.limits.max *\n"
UNSAFE = "package app\n\nlimit := data.policy.limits.max\n\nallow if {\n  nope\n}\n"


def write(path: Path, text: str) -> None:
    """Write and move mtime forward, so a same-size edit within one clock tick still shows."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    st = path.stat()
    if st.st_mtime_ns <= before:
        os.utime(path, ns=(st.st_atime_ns, before + 1_000_000))


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    rego, data = tmp_path / "rego", tmp_path / "policies"
    rego.mkdir()
    data.mkdir()
    write(rego / "app.rego", GOOD)
    write(data / "limits.yaml", "max: 5\n")
    return rego, data


def limit(engine: RegorusEngine) -> object:
    return engine.evaluate("app.limit", {}).result


def test_first_poll_loads_and_unchanged_files_do_not_reload(dirs: tuple[Path, Path]) -> None:
    engine = RegorusEngine()
    watcher = PolicyWatcher(engine, *dirs)
    assert watcher.revision == ""
    assert watcher.check_now() is True
    assert limit(engine) == 5
    assert watcher.revision == engine.revision != ""
    assert watcher.check_now() is False
    assert watcher.reloads == 1


def test_a_watcher_on_an_engine_already_serving_the_files_does_not_swap(
    dirs: tuple[Path, Path],
) -> None:
    from fieldguard.policies.source import load_policy_set

    engine = RegorusEngine(load_policy_set(*dirs))
    watcher = PolicyWatcher(engine, *dirs)
    assert watcher.check_now() is False
    assert watcher.reloads == 0


def test_good_edit_swaps_revision(dirs: tuple[Path, Path]) -> None:
    rego, data = dirs
    reloaded: list[PolicySet] = []
    engine = RegorusEngine()
    watcher = PolicyWatcher(engine, rego, data, on_reload=reloaded.append)
    watcher.check_now()
    first = watcher.revision

    write(rego / "app.rego", NEW)
    assert watcher.check_now() is True
    assert limit(engine) == 10
    assert watcher.revision != first
    assert [p.revision for p in reloaded] == [first, watcher.revision]

    write(data / "limits.yaml", "max: 7\n")
    assert watcher.check_now() is True
    assert limit(engine) == 14


def test_broken_edit_keeps_last_good_policy_and_reports_file_line(
    dirs: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    rego, data = dirs
    errors: list[PolicyError] = []
    engine = RegorusEngine()
    watcher = PolicyWatcher(engine, rego, data, on_error=errors.append)
    watcher.check_now()
    good = watcher.revision

    caplog.set_level(logging.ERROR, logger="fieldguard.policies.reload")
    write(rego / "app.rego", BROKEN)
    assert watcher.check_now() is False
    assert limit(engine) == 5  # still serving
    assert engine.revision == watcher.revision == good
    assert watcher.last_error is not None
    (problem,) = watcher.last_error.problems
    assert problem.file.endswith("app.rego")
    assert problem.line in (3, 4)
    assert errors == [watcher.last_error]
    assert f"{problem.file}:{problem.line}:{problem.col}:" in caplog.text

    # the fix recovers
    write(rego / "app.rego", NEW)
    assert watcher.check_now() is True
    assert watcher.last_error is None
    assert limit(engine) == 10


def test_unsafe_variable_is_refused_before_the_swap(dirs: tuple[Path, Path]) -> None:
    rego, data = dirs
    engine = RegorusEngine()
    watcher = PolicyWatcher(engine, rego, data)
    watcher.check_now()
    write(rego / "app.rego", UNSAFE)
    assert watcher.check_now() is False
    assert watcher.last_error is not None
    (problem,) = watcher.last_error.problems
    assert (problem.line, problem.col) == (6, 3)
    assert engine.evaluate("app.limit", {}).outcome is Outcome.VALUE


def test_broken_data_file_keeps_serving(dirs: tuple[Path, Path]) -> None:
    rego, data = dirs
    engine = RegorusEngine()
    watcher = PolicyWatcher(engine, rego, data)
    watcher.check_now()
    write(data / "limits.yaml", "max: [1, 2\n")
    assert watcher.check_now() is False
    assert watcher.last_error is not None
    assert watcher.last_error.problems[0].file.endswith("limits.yaml")
    assert limit(engine) == 5


def test_reverting_a_broken_edit_clears_the_error_without_a_swap(
    dirs: tuple[Path, Path],
) -> None:
    rego, data = dirs
    engine = RegorusEngine()
    watcher = PolicyWatcher(engine, rego, data)
    watcher.check_now()
    write(rego / "app.rego", BROKEN)
    watcher.check_now()
    write(rego / "app.rego", GOOD)
    assert watcher.check_now() is False
    assert watcher.last_error is None
    assert watcher.reloads == 1


def test_repeated_failures_log_once_but_call_back_each_poll(
    dirs: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    rego, data = dirs
    errors: list[PolicyError] = []
    watcher = PolicyWatcher(RegorusEngine(), rego, data, on_error=errors.append)
    watcher.check_now()
    caplog.set_level(logging.ERROR, logger="fieldguard.policies.reload")
    write(rego / "app.rego", BROKEN)
    watcher.check_now()
    watcher.check_now(force=True)
    assert len(errors) == 2
    assert len([r for r in caplog.records if "policy reload failed" in r.message]) == 1


def test_new_and_deleted_files_are_noticed(dirs: tuple[Path, Path]) -> None:
    rego, data = dirs
    engine = RegorusEngine()
    watcher = PolicyWatcher(engine, rego, data)
    watcher.check_now()
    (rego / "sub").mkdir()
    write(rego / "sub" / "extra.rego", "package extra\n\nv := 1\n")
    assert watcher.check_now() is True
    assert engine.evaluate("extra.v", {}).result == 1
    (rego / "sub" / "extra.rego").unlink()
    assert watcher.check_now() is True
    assert engine.evaluate("extra.v", {}).outcome is not Outcome.VALUE


def test_test_files_do_not_cause_a_swap(dirs: tuple[Path, Path]) -> None:
    rego, data = dirs
    watcher = PolicyWatcher(RegorusEngine(), rego, data)
    watcher.check_now()
    write(rego / "app_test.rego", "package app_test\n\ntest_x if true\n")
    assert watcher.check_now() is False
    assert watcher.reloads == 1


def test_callback_errors_do_not_break_the_watcher(dirs: tuple[Path, Path]) -> None:
    def boom(_: PolicySet) -> None:
        raise RuntimeError("callback bug")

    rego, data = dirs
    engine = RegorusEngine()
    watcher = PolicyWatcher(engine, rego, data, on_reload=boom)
    assert watcher.check_now() is True
    assert limit(engine) == 5


def test_background_thread_reloads_and_stops(dirs: tuple[Path, Path]) -> None:
    rego, data = dirs
    engine = RegorusEngine()
    swapped = threading.Event()
    watcher = PolicyWatcher(engine, rego, data, interval=0.01,
                            on_reload=lambda p: swapped.set())
    with watcher:
        assert watcher.running
        assert swapped.wait(5)  # the initial load
        swapped.clear()
        write(rego / "app.rego", NEW)
        assert swapped.wait(5)
        with pytest.raises(ConfigurationError, match="already running"):
            watcher.start()
    assert not watcher.running
    # the serving thread rebuilds its interpreter from the swapped policy
    assert limit(engine) == 10


def test_bad_interval_is_a_configuration_error(dirs: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigurationError):
        PolicyWatcher(RegorusEngine(), *dirs, interval=0)
