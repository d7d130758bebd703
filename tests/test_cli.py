"""Tests for the ``fieldguard`` command line."""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from fieldguard.cli import COMMANDS, Command, main
from fieldguard.policies.regorus_engine import RegorusEngine
from fieldguard.policies.source import PolicySet, load_policy_set

REPO = Path(__file__).resolve().parents[1]
HAS_OPA = importlib.util.find_spec("opa_bindings") is not None

PLAN = """package fieldguard

default outcome := "deny"

outcome := "allow" if input.subject.authenticated

plan := {
    "allow": outcome == "allow",
    "outcome": outcome,
    "status": {"allow": 200, "deny": 403}[outcome],
    "reasons": [r | some r in reasons],
    "retry_after": 0,
    "fields": {f.coordinate: effect(f.coordinate) | some f in input.fields},
    "limits": {"max_page_size": data.policy.limits.max_page_size},
    "charges": [],
} if input.subject

reasons contains {"code": "auth.anonymous", "message": "log in first"} if {
    not input.subject.authenticated
}

effect(c) := {"effect": "mask", "mask": m, "reason": "personal data"} if {
    m := data.policy.classification.masks[c]
} else := {"effect": "allow"}
"""

PLAN_TESTS = """package fieldguard_test

import data.fieldguard

test_anonymous_is_denied if {
    fieldguard.plan.outcome == "deny" with input as {"subject": {"authenticated": false}}
}

test_expects_anonymous_allowed if {
    print("outcome", fieldguard.plan.outcome) with input as {"subject": {}}
    fieldguard.plan.allow with input as {"subject": {"authenticated": false}}
}
"""

HELPERS = """package lib.util

double(x) := x * 2
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small project in the layout fieldguard expects, as the working directory."""
    (tmp_path / "rego" / "fieldguard").mkdir(parents=True)
    (tmp_path / "rego" / "lib").mkdir()
    (tmp_path / "policies").mkdir()
    (tmp_path / "rego" / "fieldguard" / "plan.rego").write_text(PLAN)
    (tmp_path / "rego" / "fieldguard" / "plan_test.rego").write_text(PLAN_TESTS)
    (tmp_path / "rego" / "lib" / "util.rego").write_text(HELPERS)
    (tmp_path / "policies" / "classification.yaml").write_text("masks:\n  User.email: email\n")
    (tmp_path / "policies" / "limits.yaml").write_text("max_page_size: 100\n")
    (tmp_path / "input.json").write_text(json.dumps({
        "subject": {"id": "u7", "authenticated": True},
        "fields": [{"coordinate": "User.email"}, {"coordinate": "User.name"}],
    }))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def break_plan(project: Path) -> None:
    (project / "rego" / "fieldguard" / "plan.rego").write_text(
        "package fieldguard\n\nplan := {\"allow\": allow}\n\nallow if {\n"
        "    input.subject.authenticated ==\n}\n"
    )


# -- general ---------------------------------------------------------------


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_help_lists_every_registered_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("check", "test", "eval", "bundle"):
        assert name in out


def test_new_subcommands_register_in_one_place(capsys: pytest.CaptureFixture[str]) -> None:
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--who", default="auditor")

    def run(args: argparse.Namespace) -> int:
        print(f"hello {args.who}")
        return 0

    COMMANDS["hello"] = Command("hello", "greet", configure, run)
    try:
        assert main(["hello", "--who", "dpo"]) == 0
    finally:
        del COMMANDS["hello"]
    assert capsys.readouterr().out == "hello dpo\n"


# -- check -----------------------------------------------------------------


def test_check_ok_prints_the_production_revision(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    revision = load_policy_set("rego", "policies").revision
    assert out.startswith("ok: 2 modules (+1 test), 2 data files, 0 warnings")
    assert revision in out


def test_check_reports_file_line_col_and_fails(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    break_plan(project)
    assert main(["check"]) == 1
    err = capsys.readouterr().err
    assert "rego/fieldguard/plan.rego:7:1: " in err
    assert "Traceback" not in err


def test_check_reports_unsafe_variables_before_anything_serves(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "rego" / "lib" / "util.rego").write_text("package lib.util\n\nx if {\n  y\n}\n")
    assert main(["check"]) == 1
    assert "rego/lib/util.rego:4:3: use of undefined variable `y` is unsafe" in (
        capsys.readouterr().err
    )


def test_check_warns_about_builtins_regorus_lacks_but_passes(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "rego" / "lib" / "jwt.rego").write_text(
        "package lib.jwt\n\nclaims := io.jwt.decode(input.token)\n"
    )
    assert main(["check"]) == 0
    captured = capsys.readouterr()
    assert "rego/lib/jwt.rego:3:11: warning: io.jwt.decode is not available" in captured.err
    assert "1 warning" in captured.out


def test_check_bad_data_file_is_located(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "policies" / "limits.yaml").write_text("max_page_size: [1,\n")
    assert main(["check"]) == 1
    assert "policies/limits.yaml:2:1:" in capsys.readouterr().err


def test_check_missing_directory_is_one_clear_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "nowhere"]) == 1
    err = capsys.readouterr().err
    assert "nowhere:1:1: no such policy directory" in err
    assert main(["check", "--data", "nodata"]) == 1
    assert "nodata:1:1: no such data directory" in capsys.readouterr().err


def test_check_unknown_engine_is_reported(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--engine", "bogus://x"]) == 1
    assert "unknown engine URL" in capsys.readouterr().err


@pytest.mark.opa_embedded
@pytest.mark.skipif(not HAS_OPA, reason="opa-golib-python-bindings not installed")
def test_check_on_opa_embedded(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--engine", "opa-embedded://"]) == 0
    break_plan(project)
    assert main(["check", "--engine", "opa-embedded://"]) == 1
    assert "rego/fieldguard/plan.rego:7:" in capsys.readouterr().err


# -- test ------------------------------------------------------------------


def test_test_prints_failures_and_the_summary(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  data.fieldguard_test.test_expects_anonymous_allowed" in out
    assert "rego/fieldguard/plan_test.rego:9" in out
    assert "print: rego/fieldguard/plan_test.rego:10: outcome deny" in out
    assert "test_anonymous_is_denied" not in out
    assert out.splitlines()[-1] == "1 passed, 1 failed"


def test_test_verbose_lists_passing_tests_too(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", "rego", "--data", "policies", "-v"]) == 1
    out = capsys.readouterr().out
    assert "PASS  data.fieldguard_test.test_anonymous_is_denied" in out


def test_test_run_filter_and_exit_zero(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", "--run", "anonymous_is"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 passed, 0 failed"


def test_test_errors_are_counted(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "rego" / "lib" / "util_test.rego").write_text(
        "package lib.util_test\n\nimport data.lib.util\n\n"
        "test_double if util.double(2) == 4\n\ntest_div if {\n  x := 0\n  1 / x == 1\n}\n"
    )
    assert main(["test", "--run", "util_test"]) == 1
    out = capsys.readouterr().out
    assert "ERROR data.lib.util_test.test_div (rego/lib/util_test.rego:7" in out
    assert "rego/lib/util_test.rego:9:" in out
    assert out.splitlines()[-1] == "1 passed, 0 failed, 1 errors"


def test_test_coverage_report(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["test", "--coverage"])
    out = capsys.readouterr().out
    assert "coverage:" in out
    assert "rego/fieldguard/plan.rego:" in out
    assert "total:" in out


def test_test_nothing_found_fails(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "--run", "no_such_test"]) == 1
    assert "no tests found matching 'no_such_test'" in capsys.readouterr().err


def test_test_broken_policy_reports_location(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    break_plan(project)
    assert main(["test"]) == 1
    assert "rego/fieldguard/plan.rego:7:1:" in capsys.readouterr().err


def test_test_bad_regex_is_reported(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "--run", "("]) == 1
    assert "bad --run pattern" in capsys.readouterr().err


def test_test_unknown_engine_is_a_usage_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", "--engine", "opa+http://x"]) == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.opa_embedded
@pytest.mark.skipif(not HAS_OPA, reason="opa-golib-python-bindings not installed")
def test_test_on_opa_embedded_agrees(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "--engine", "opa-embedded"]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "1 passed, 1 failed"


# -- eval ------------------------------------------------------------------


def test_eval_human_readable(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--input", "input.json"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "fieldguard.plan: allow (status 200, allow true)"
    assert "fields:" in lines
    assert any("User.email" in line and "mask (email)" in line and "personal data" in line
               for line in lines)
    assert any("User.name" in line and "allow" in line for line in lines)
    assert "limits: max_page_size=100" in lines
    assert lines[-1].startswith("revision sha256:")


def test_eval_shows_reasons(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "anon.json").write_text('{"subject": {"authenticated": false}, "fields": []}')
    assert main(["eval", "-i", "anon.json"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fieldguard.plan: deny (status 403, allow false)")
    assert "reasons:\n  auth.anonymous: log in first\n" in out


def test_eval_json_from_stdin(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO((project / "input.json").read_text()))
    assert main(["eval", "--input", "-", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fields"]["User.email"] == {
        "effect": "mask", "mask": "email", "reason": "personal data"
    }


def test_eval_other_paths_print_json(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "-i", "input.json", "--path", "data.fieldguard.outcome"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == ["fieldguard.outcome:", '"allow"']


def test_eval_undefined_exits_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "empty.json").write_text("{}")
    assert main(["eval", "-i", "empty.json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "fieldguard.plan: undefined" in captured.err
    assert "releases nothing" in captured.err


def test_eval_missing_rule_is_undefined_and_exits_2(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A rule that does not exist is undefined, as in OPA (not an engine error).
    assert main(["eval", "-i", "input.json", "--path", "fieldguard.nothing"]) == 2
    assert "fieldguard.nothing: undefined" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"subject": ', "bad.json:1:13: invalid JSON"),
        ("[1, 2]", "bad.json: the input must be a JSON object, not list"),
    ],
)
def test_eval_bad_input_is_one_clear_line(
    project: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str
) -> None:
    (project / "bad.json").write_text(content)
    assert main(["eval", "-i", "bad.json"]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


def test_eval_missing_input_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "-i", "missing.json"]) == 2
    assert "cannot read input missing.json: No such file or directory" in (
        capsys.readouterr().err
    )


def test_eval_yaml_input(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "in.yaml").write_text("subject: {authenticated: true}\nfields: []\n")
    assert main(["eval", "-i", "in.yaml", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "allow"


def test_eval_requires_input(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval"]) == 2
    assert "--input" in capsys.readouterr().err


# -- bundle ----------------------------------------------------------------


def read_bundle(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        out = {}
        for member in tar.getmembers():
            f = tar.extractfile(member)
            assert f is not None
            out[member.name] = f.read()
        return out


def test_bundle_layout_matches_opa(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bundle", "-o", "dist/bundle.tar.gz"]) == 0
    assert "wrote dist/bundle.tar.gz" in capsys.readouterr().out
    files = read_bundle(project / "dist" / "bundle.tar.gz")
    assert sorted(files) == [
        "/.manifest", "/data.json", "/fieldguard/plan.rego", "/lib/util.rego"
    ]
    manifest = json.loads(files["/.manifest"])
    production = load_policy_set("rego", "policies")
    assert manifest["revision"] == production.revision
    assert manifest["roots"] == ["fieldguard", "lib", "policy"]
    assert json.loads(files["/data.json"]) == {
        "policy": {"classification": {"masks": {"User.email": "email"}},
                   "limits": {"max_page_size": 100}}
    }
    assert files["/fieldguard/plan.rego"].decode() == PLAN


def test_bundle_revision_override_and_reproducible_bytes(project: Path) -> None:
    assert main(["bundle", "-o", "a.tar.gz", "--revision", "2024-06-01.1"]) == 0
    assert main(["bundle", "-o", "b.tar.gz", "--revision", "2024-06-01.1"]) == 0
    a, b = (project / "a.tar.gz").read_bytes(), (project / "b.tar.gz").read_bytes()
    assert a == b
    manifest = json.loads(read_bundle(project / "a.tar.gz")["/.manifest"])
    assert manifest["revision"] == "2024-06-01.1"
    assert manifest["metadata"]["fieldguard"]["policy_revision"].startswith("sha256:")


@pytest.mark.opa_embedded
@pytest.mark.skipif(not HAS_OPA, reason="opa-golib-python-bindings not installed")
def test_bundle_loads_into_opa_and_decides_like_regorus(project: Path) -> None:
    from opa_bindings.engine import OpaEngine

    assert main(["bundle", "-o", "bundle.tar.gz"]) == 0
    files = read_bundle(project / "bundle.tar.gz")
    opa = OpaEngine()
    try:
        for name, body in files.items():
            if name.endswith(".rego"):
                opa.add_policy(name, body.decode())
        opa.add_data(json.loads(files["/data.json"]))
        data = json.loads((project / "input.json").read_text())
        from_bundle = opa.eval_document("fieldguard.plan", data)
    finally:
        opa.close()
    regorus = RegorusEngine(load_policy_set("rego", "policies"))
    assert from_bundle == regorus.evaluate("fieldguard.plan", data).result


def test_bundle_refuses_a_broken_policy(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    break_plan(project)
    assert main(["bundle", "-o", "bundle.tar.gz"]) == 1
    assert "rego/fieldguard/plan.rego:7:1:" in capsys.readouterr().err
    assert not (project / "bundle.tar.gz").exists()


def test_bundle_without_data_dir_has_empty_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "only.rego").write_text("package solo\n\nx := 1\n")
    assert main(["bundle", "only.rego", "-o", "b.tar.gz"]) == 0
    files = read_bundle(tmp_path / "b.tar.gz")
    assert sorted(files) == ["/.manifest", "/data.json", "/only.rego"]
    assert json.loads(files["/.manifest"])["roots"] == ["solo"]
    assert json.loads(files["/data.json"]) == {}


def test_write_bundle_keeps_in_memory_paths(tmp_path: Path) -> None:
    from fieldguard.cli import write_bundle

    ps = PolicySet.from_sources([("pkg/p.rego", "package p\nx := 1\n"),
                                 ("pkg/p_test.rego", "package p_test\ntest_x if true\n")])
    info = write_bundle(ps, tmp_path / "nowhere", tmp_path / "b.tar.gz")
    assert info.files == ("/.manifest", "/data.json", "/pkg/p.rego")


# -- the real console script -------------------------------------------------


def console_script() -> str:
    script = Path(sys.executable).parent / "fieldguard"
    if not script.exists():
        pytest.skip("the fieldguard console script is not installed")
    return str(script)


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
    return subprocess.run([console_script(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env, check=False)


def test_script_check_broken_policy(project: Path) -> None:
    break_plan(project)
    proc = run_script("check", cwd=project)
    assert proc.returncode == 1
    assert "rego/fieldguard/plan.rego:7:1:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_script_test_summary(project: Path) -> None:
    proc = run_script("test", "rego", "--data", "policies", cwd=project)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[-1] == "1 passed, 1 failed"


def test_script_eval_and_bundle(project: Path) -> None:
    proc = run_script("eval", "--input", "input.json", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["allow"] is True
    proc = run_script("bundle", "-o", "out.tar.gz", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "/.manifest" in read_bundle(project / "out.tar.gz")


SHIPPED = REPO / "rego" / "fieldguard"


@pytest.mark.skipif(
    not any(SHIPPED.rglob("*_test.rego")) if SHIPPED.is_dir() else True,
    reason="the shipped Rego library (rego/fieldguard) is not there yet",
)
def test_shipped_library_tests_pass() -> None:
    proc = run_script("test", "rego", "--data", "policies", cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 failed" in proc.stdout.splitlines()[-1]
