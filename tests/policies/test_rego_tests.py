"""Tests for running Rego test rules and checking policies."""

from __future__ import annotations

import importlib.util

import pytest

from fieldguard.errors import ConfigurationError, PolicyError, PolicyProblem
from fieldguard.policies.rego_tests import (
    PolicyWarning,
    TestStatus,
    check_policy,
    compile_problems,
    discover_tests,
    run_tests,
    unsupported_builtins,
)
from fieldguard.policies.source import Module, PolicySet

HAS_OPA = importlib.util.find_spec("opa_bindings") is not None
ENGINES = [
    "regorus",
    pytest.param("opa-embedded", marks=[
        pytest.mark.opa_embedded,
        pytest.mark.skipif(not HAS_OPA, reason="opa-golib-python-bindings not installed"),
    ]),
]

POLICY = """package app.authz

import rego.v1

default allow := false

allow if input.role == data.policy.roles.admin

allow if {
    input.role == "reader"
    input.method == "GET"
}
"""

TESTS = """package app.authz_test

import data.app.authz

test_admin_allowed if {
    print("checking admin")
    authz.allow with input as {"role": "admin"}
}

test_reader_cannot_write if {
    not authz.allow with input as {"role": "reader", "method": "POST"}
}

test_wrongly_expects_reader_write if authz.allow with input as {"role": "reader", "method": "PUT"}

test_divides_by_zero if {
    x := 0
    1 / x == 1
}

todo_rate_limits if false

test_helper(x) := x

not_a_test if true
"""


def policy_set(*extra: tuple[str, str]) -> PolicySet:
    return PolicySet.from_sources(
        [("rego/app/authz.rego", POLICY), ("rego/app/authz_test.rego", TESTS), *extra],
        {"policy": {"roles": {"admin": "admin"}}},
    )


def test_discovery_finds_test_and_todo_rules_with_lines() -> None:
    cases = discover_tests(policy_set())
    assert [(c.name, c.line) for c in cases] == [
        ("test_admin_allowed", 5),
        ("test_reader_cannot_write", 10),
        ("test_wrongly_expects_reader_write", 14),
        ("test_divides_by_zero", 16),
        ("todo_rate_limits", 21),
    ]
    assert {c.package for c in cases} == {"app.authz_test"}
    assert cases[0].path == "data.app.authz_test.test_admin_allowed"
    assert cases[0].location == "rego/app/authz_test.rego:5"


def test_discovery_handles_quoted_package_parts() -> None:
    ps = PolicySet.from_sources([("q.rego", 'package a["b-c"]\ntest_q if true\n')])
    (case,) = discover_tests(ps)
    assert case.package == "a.b-c"
    assert run_tests(ps).summary() == "1 passed, 0 failed"


def test_discovery_falls_back_to_a_line_scan_when_a_module_does_not_parse_alone() -> None:
    # Rego v0 syntax: regorus (v1) refuses it, the scan still lists the test.
    ps = PolicySet.from_sources([("old.rego", "package old\n\ntest_v0 {\n  true\n}\n")])
    (case,) = discover_tests(ps)
    assert (case.package, case.name, case.line) == ("old", "test_v0", 3)


def test_duplicate_test_names_are_one_test_at_the_first_line() -> None:
    ps = PolicySet.from_sources([("d.rego", "package d\ntest_x if true\ntest_x if 1 == 1\n")])
    assert [(c.name, c.line) for c in discover_tests(ps)] == [("test_x", 2)]


@pytest.mark.parametrize("engine", ENGINES)
def test_run_reports_each_outcome(engine: str) -> None:
    report = run_tests(policy_set(), engine=engine)
    status = {r.name: r.status for r in report.results}
    assert status == {
        "test_admin_allowed": TestStatus.PASSED,
        "test_reader_cannot_write": TestStatus.PASSED,
        "test_wrongly_expects_reader_write": TestStatus.FAILED,
        "test_divides_by_zero": TestStatus.ERROR,
        "todo_rate_limits": TestStatus.SKIPPED,
    }
    assert report.summary() == "2 passed, 1 failed, 1 errors, 1 skipped"
    assert not report.ok
    assert report.engine == engine
    by_name = {r.name: r for r in report.results}
    err = by_name["test_divides_by_zero"]
    assert err.error is not None
    assert "rego/app/authz_test.rego:18" in err.error
    assert "divide by zero" in err.error
    assert by_name["test_admin_allowed"].prints == ("rego/app/authz_test.rego:6: checking admin",)
    assert all(r.duration_ns >= 0 for r in report.results)


@pytest.mark.parametrize("engine", ENGINES)
def test_run_filter_matches_full_rule_path(engine: str) -> None:
    report = run_tests(policy_set(), engine=engine, run=r"authz_test\.test_(admin|reader)")
    assert [r.name for r in report.results] == ["test_admin_allowed", "test_reader_cannot_write"]
    assert report.ok
    assert report.summary() == "2 passed, 0 failed"


@pytest.mark.parametrize("engine", ENGINES)
def test_coverage_covers_policy_modules_only(engine: str) -> None:
    report = run_tests(policy_set(), engine=engine, run="test_admin", coverage=True)
    assert report.coverage is not None
    (file,) = report.coverage.files
    assert file.path == "rego/app/authz.rego"
    assert 7 in file.covered
    assert 0 < report.coverage.percent <= 100
    assert report.coverage.as_dict()["files"]["rego/app/authz.rego"]["covered"]


def test_false_value_fails_and_non_boolean_value_passes() -> None:
    ps = PolicySet.from_sources([("v.rego", "package v\ntest_f := false\ntest_n := 3\n")])
    status = {r.name: r.status for r in run_tests(ps).results}
    assert status == {"test_f": TestStatus.FAILED, "test_n": TestStatus.PASSED}


def test_no_tests_is_an_empty_ok_report() -> None:
    ps = PolicySet.from_sources([("p.rego", "package p\nx := 1\n")])
    report = run_tests(ps)
    assert report.results == ()
    assert report.ok
    assert report.summary() == "0 passed, 0 failed"


def test_run_refuses_a_policy_that_does_not_compile() -> None:
    ps = policy_set(("rego/app/broken.rego", "package broken\n\nx if {\n  y\n}\n"))
    with pytest.raises(PolicyError) as info:
        run_tests(ps)
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.col) == ("rego/app/broken.rego", 4, 3)


def test_unknown_engine_and_bad_pattern_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="unknown test engine"):
        run_tests(policy_set(), engine="opa+http://localhost:8181")
    with pytest.raises(ConfigurationError, match="bad --run pattern"):
        run_tests(policy_set(), run="(")


# -- checking --------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_check_locates_parse_errors(engine: str) -> None:
    ps = PolicySet.from_sources([("b.rego", "package b\n\nallow if {\n    input.x ==\n}\n")])
    (problem,) = check_policy(ps, engine)
    assert isinstance(problem, PolicyProblem)
    assert problem.file == "b.rego"
    assert problem.line in (4, 5)  # the engines blame the operator or the brace
    assert problem.col >= 1


def test_check_finds_unsafe_variables_regorus_defers_to_evaluation() -> None:
    ps = PolicySet.from_sources([("u.rego", "package u\n\nallow if {\n    input.x == y\n}\n")])
    assert [str(p) for p in compile_problems(ps)] == [
        "u.rego:4:16: use of undefined variable `y` is unsafe"
    ]


@pytest.mark.opa_embedded
@pytest.mark.skipif(not HAS_OPA, reason="opa-golib-python-bindings not installed")
def test_check_on_opa_finds_type_errors_with_a_column() -> None:
    ps = PolicySet.from_sources([("t.rego", "package t\n\nx if {\n    nope.fn(1)\n}\n")])
    (problem,) = check_policy(ps, "opa-embedded://")
    assert str(problem) == "t.rego:4:5: rego_type_error: undefined function nope.fn"


def test_check_warns_about_builtins_the_embedded_default_lacks() -> None:
    text = (
        "package w\n"
        "# io.jwt.decode in a comment is fine\n"
        'claims := io.jwt.decode(input.token)\n'
        'digest := crypto.sha256("x")  # crypto.md5 too\n'
        'label := "graphql.parse is just text"\n'
        "meta := rego.metadata.rule()\n"
        "schema_ok := graphql.is_valid(input.q, input.s)\n"
        "other := data.crypto.keys\n"
    )
    ps = PolicySet.from_sources([("w.rego", text)])
    found = check_policy(ps)
    assert all(isinstance(w, PolicyWarning) for w in found)
    assert [(w.line, w.col, w.message.split()[0]) for w in found] == [
        (3, 11, "io.jwt.decode"),
        (4, 11, "crypto.sha256"),
        (6, 9, "rego.metadata.rule"),
        (7, 14, "graphql.is_valid"),
    ]
    assert str(found[0]).startswith("w.rego:3:11: warning: io.jwt.decode is not available")


def test_builtin_scan_ignores_raw_strings_across_lines() -> None:
    m = Module("r.rego", "package r\nx := `\ncrypto.sha256(1)\n`\ny := crypto.md5(\"a\")\n")
    assert [(w.line, w.col) for w in unsupported_builtins(m)] == [(5, 6)]


def test_errors_sort_before_warnings_on_the_same_spot() -> None:
    ps = PolicySet.from_sources([
        ("a.rego", 'package a\nx := crypto.sha256("a")\n'),
        ("b.rego", "package b\nx := \n"),
    ])
    found = check_policy(ps)
    assert [type(f).__name__ for f in found] == ["PolicyWarning", "PolicyProblem"]
    assert [f.file for f in found] == ["a.rego", "b.rego"]


def test_clean_policy_has_no_findings() -> None:
    assert check_policy(policy_set()) == []


@pytest.mark.opa_embedded
@pytest.mark.skipif(not HAS_OPA, reason="opa-golib-python-bindings not installed")
def test_quoted_package_parts_run_on_opa() -> None:
    ps = PolicySet.from_sources([("q.rego", 'package a["b-c"]\ntest_q if true\n')])
    (case,) = discover_tests(ps)
    assert case.path == 'data.a["b-c"].test_q'
    assert run_tests(ps, engine="opa-embedded").summary() == "1 passed, 0 failed"


@pytest.mark.parametrize("engine", ENGINES)
def test_a_test_whose_value_is_a_set_of_objects_passes(engine: str) -> None:
    ps = PolicySet.from_sources([("s.rego", 'package s\ntest_set contains {"a": 1}\n'
                                  'test_obj := {"a": {{"b": 1}}}\n')])
    # test_set is a partial set rule, not a test; test_obj holds a set of objects,
    # which regorus cannot hand to Python as a set
    assert [r.name for r in run_tests(ps, engine=engine).results] == ["test_obj"]
    assert run_tests(ps, engine=engine).ok
