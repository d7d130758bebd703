from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fieldguard.context import Caller, Client, Subject
from fieldguard.errors import ConfigurationError, PolicyError
from fieldguard.guard import Classification, Guard, Operation, read_attr, snake_case
from fieldguard.policies.reload import PolicyWatcher
from fieldguard.policies.source import PolicySet, load_policy_set
from fieldguard.testing import capture_decisions

ALLOW_ALL = '''package fieldguard
plan := {"allow": true, "outcome": "allow", "status": 200,
         "fields": {f.coordinate: {"effect": "allow"} | some f in input.fields}}
'''
CALLER = Caller(Subject("u1"), Client("203.0.113.5"))


def test_bad_configuration_raises_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown engine URL"):
        Guard("nosuch://", policy=PolicySet.from_sources([("p.rego", ALLOW_ALL)]))
    with pytest.raises(PolicyError):
        Guard(rego_dir=str(tmp_path / "missing"), data_dir=str(tmp_path))
    bad_class = PolicySet.from_sources([("p.rego", ALLOW_ALL)],
                                       {"policy": {"classification": {"types": {"User": 3}}}})
    with pytest.raises(ConfigurationError, match=r"classification\.types\.User"):
        Guard(policy=bad_class)
    unknown_mask = PolicySet.from_sources([("p.rego", ALLOW_ALL)], {"policy": {
        "classification": {"coordinates": {"User.email": {"mask": "rot13"}}}}})
    with pytest.raises(ConfigurationError, match="unknown masker 'rot13'"):
        Guard(policy=unknown_mask)
    with pytest.raises(ConfigurationError, match="quota catalogue"):
        Guard(policy=PolicySet.from_sources([("p.rego", ALLOW_ALL)]), limiter="memory://")


def test_one_plan_call_and_capture(tmp_path: Path) -> None:
    guard = Guard(policy=PolicySet.from_sources([("p.rego", ALLOW_ALL)]))
    with capture_decisions(guard) as records:
        session = guard.session(CALLER)
        session.decide(Operation("rest", "query", "GET /x", fields={"User.name": 2}))
        session.finish()
    assert session.engine_calls == 1
    assert [r.outcome for r in records] == ["allow"]
    assert records[0].input["fields"] == [{"coordinate": "User.name", "tags": ["public"],
                                           "count": 2}]
    assert guard.audit is None  # restored


def test_hot_reload_reaches_a_running_guard(tmp_path: Path) -> None:
    rego, data = tmp_path / "rego", tmp_path / "policies"
    shutil.copytree("rego", rego)
    shutil.copytree("policies", data)
    guard = Guard(policy=load_policy_set(rego, data))
    watcher = PolicyWatcher(guard.engine, rego, data)
    before = guard.engine.revision
    assert guard.classification().tags["User.bio"] == ("public",)

    cls = data / "classification.yaml"
    cls.write_text(cls.read_text().replace("User.bio: {tags: [public]}",
                                           "User.bio: {tags: [pii]}"))
    watcher.check_now()
    assert guard.engine.revision != before
    assert guard.classification().tags["User.bio"] == ("pii",)

    good = guard.engine.revision
    module = rego / "fieldguard" / "fieldguard.rego"
    module.write_text(module.read_text() + "\nbroken := {\n")
    watcher.check_now()
    assert guard.engine.revision == good          # the last good policy keeps serving
    assert watcher.last_error is not None
    assert "fieldguard.rego:" in str(watcher.last_error)
    session = guard.session(CALLER)
    plan = session.decide(Operation("graphql", "query", None, fields={"User.handle": 1},
                                    complexity={"depth": 1}))
    assert plan.allow


def test_classification_tags_and_attributes() -> None:
    cls = Classification.from_policy(load_policy_set("rego", "policies"))
    assert cls.tags_for("User.email") == ("pii", "contact")
    assert cls.tags_for("Thing.x", ("pii",)) == ("pii",)     # code tags when data is silent
    assert cls.tags_for("Thing.y") == ("public",)            # then the defaults
    assert cls.is_personal("User.email") and not cls.is_personal("User.handle")
    assert snake_case("authorId") == "author_id"
    assert read_attr({"author_id": 1}, "authorId") == 1


CHECK_ALL = '''package fieldguard
plan := {"allow": true, "outcome": "allow", "status": 200,
         "fields": {f.coordinate: {"effect": "check"} | some f in input.fields}}
objects := {"objects": [verdict(o) | some o in input.objects]}
verdict(o) := {"visible": {k | some k, _ in input} == {"subject", "client", "purpose",
                                                      "coordinates", "objects"},
               "fields": {c: {"effect": "allow"} | some c in input.coordinates}}
'''
CLASSIFIED = {"policy": {"classification": {"types": {
    "User": {"subject": "id", "owner": "id", "attrs": ["visibility"]}}}}}


def test_objects_input_is_the_caller_coordinates_and_objects() -> None:
    guard = Guard(policy=PolicySet.from_sources([("p.rego", CHECK_ALL)], CLASSIFIED))
    session = guard.session(Caller(Subject("u1"), Client("203.0.113.5"), purpose="support"))
    session.decide(Operation("graphql", "query", "Users", fields={"User.email": 1},
                             complexity={"depth": 2}))
    assert set(session.objects_caller()) == {"subject", "client", "purpose"}
    [verdict] = session.verdicts("User", [{"id": "u2", "visibility": "public"}])
    assert verdict.visible            # no operation, usage, signals or fields
    assert verdict.effect("User.email").effect == "allow"
