"""The shipped Rego library (``rego/fieldguard``) and policy data (``policies/``).

Every ``test_*`` rule in ``rego/fieldguard/*_test.rego`` runs as one pytest
case on regorus (the embedded default) and one on OPA's own engine
(``opa-golib-python-bindings``): the library must decide identically on both.
Below them, Python-level tests drive ``fieldguard.plan`` and
``fieldguard.objects`` through :class:`RegorusEngine` with realistic
requests, check the answers against the contract parsers, and compare the two
engines on generated (also malformed) inputs.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldguard.limits.catalogue import Catalogue
from fieldguard.limits.keys import ip_prefix
from fieldguard.policies.contract import Plan, parse_objects
from fieldguard.policies.regorus_engine import RegorusEngine, compile_regorus
from fieldguard.policies.source import PolicySet, load_policy_set

ROOT = Path(__file__).resolve().parents[2]
REGO_DIR = ROOT / "rego"
DATA_DIR = ROOT / "policies"

WITH_TESTS = load_policy_set(REGO_DIR, DATA_DIR, include_tests=True)
SHIPPED = load_policy_set(REGO_DIR, DATA_DIR)

os.environ.pop("RUST_BACKTRACE", None)  # regorus errors are slow with it set


# --------------------------------------------------------------------- discovery


def _ref_path(node: dict[str, Any]) -> list[str]:
    """A package ref from regorus' AST (``Var`` and ``RefDot`` nodes) as names."""
    if "Var" in node:
        return [node["Var"]["value"]]
    if "RefDot" in node:
        return [*_ref_path(node["RefDot"]["refr"]), node["RefDot"]["field"][1]]
    raise ValueError(f"unexpected package ref node {sorted(node)}")


def _head_name(head: dict[str, Any]) -> str | None:
    """The rule name of a rule head (the first Var of its ref)."""
    for kind in head.values():
        refr = kind.get("refr") if isinstance(kind, dict) else None
        if refr is None:
            continue
        try:
            return _ref_path(refr)[0]
        except ValueError:
            return None
    return None


def discover_rego_tests(policy: PolicySet) -> list[tuple[str, str]]:
    """(module path, ``package.rule``) for every ``test_*`` rule, via regorus' AST."""
    engine = compile_regorus(policy)
    found: set[tuple[str, str]] = set()
    for module in json.loads(engine.get_ast_as_json()):
        path = module["source"]["file"]
        if not path.endswith("_test.rego"):
            continue
        package = ".".join(_ref_path(module["ast"]["package"]["refr"]))
        for rule in module["ast"]["rules"]:
            spec = rule.get("Spec")
            if not spec:
                continue
            name = _head_name(spec["head"])
            if name and name.startswith("test_"):
                found.add((path, f"{package}.{name}"))
    return sorted(found)


def discover_by_text(policy: PolicySet) -> set[str]:
    """The same list read from the module text (a cross-check on the AST walk)."""
    out = set()
    for m in policy.modules:
        if not m.is_test:
            continue
        package = re.search(r"^package\s+([\w.]+)", m.text, re.MULTILINE)
        assert package, m.path
        for name in re.findall(r"^(test_\w+)\b", m.text, re.MULTILINE):
            out.add(f"{package.group(1)}.{name}")
    return out


REGO_TESTS = discover_rego_tests(WITH_TESTS)
TEST_IDS = [rule for _, rule in REGO_TESTS]


# --------------------------------------------------------------------- engines


# Raw regorus interpreters must be dropped on the thread that made them, but a
# fixture value can end up in a reference cycle that the cyclic GC collects on
# whichever thread it runs in (a worker of some other test's server). Pin them
# for the life of the process; the main thread drops them at exit.
_PINNED: list[Any] = []


@pytest.fixture(scope="module")
def regorus_tests() -> Any:
    engine = compile_regorus(WITH_TESTS)
    _PINNED.append(engine)
    return engine


@pytest.fixture(scope="module")
def opa_tests() -> Any:
    engine_mod = pytest.importorskip("opa_bindings.engine")
    engine = engine_mod.OpaEngine()
    for m in WITH_TESTS.modules:
        engine.add_policy(m.path, m.text)
    engine.add_data(json.loads(json.dumps(WITH_TESTS.data)))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def opa_shipped() -> Any:
    engine_mod = pytest.importorskip("opa_bindings.engine")
    engine = engine_mod.OpaEngine()
    for m in SHIPPED.modules:
        engine.add_policy(m.path, m.text)
    engine.add_data(json.loads(json.dumps(SHIPPED.data)))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def regorus_shipped() -> RegorusEngine:
    return RegorusEngine(SHIPPED)


# --------------------------------------------------------------------- the Rego tests


@pytest.mark.parametrize("rule", TEST_IDS)
def test_rego_on_regorus(regorus_tests: Any, rule: str) -> None:
    regorus_tests.set_input({})
    assert regorus_tests.eval_rule("data." + rule) is True, f"{rule} failed on regorus"


@pytest.mark.opa_embedded
@pytest.mark.parametrize("rule", TEST_IDS)
def test_rego_on_opa(opa_tests: Any, rule: str) -> None:
    from opa_bindings.engine import OpaUndefinedError

    try:
        value = opa_tests.eval_document(rule, {})
    except OpaUndefinedError:
        pytest.fail(f"{rule} failed on OPA (undefined)")
    assert value is True, f"{rule} failed on OPA: {value!r}"


def test_enough_rego_tests_and_discovery_agrees() -> None:
    assert len(REGO_TESTS) >= 60
    assert set(TEST_IDS) == discover_by_text(WITH_TESTS)


def test_every_helper_package_has_tests() -> None:
    packages = {
        re.search(r"^package\s+([\w.]+)", m.text, re.MULTILINE).group(1)  # type: ignore[union-attr]
        for m in WITH_TESTS.modules
    }
    tested = {rule.rsplit(".", 1)[0] for rule in TEST_IDS}
    for package in packages:
        if package.endswith("_test"):
            continue
        assert f"{package}_test" in tested, f"package {package} has no tests"


def test_no_module_named_like_a_decision() -> None:
    packages = {
        re.search(r"^package\s+([\w.]+)", m.text, re.MULTILINE).group(1)  # type: ignore[union-attr]
        for m in WITH_TESTS.modules
    }
    assert "fieldguard.plan" not in packages
    assert "fieldguard.objects" not in packages


def test_no_builtins_regorus_lacks() -> None:
    for m in WITH_TESTS.modules:
        for banned in ("io.jwt.", "crypto.", "graphql.", "rego.metadata."):
            assert banned not in m.text, f"{m.path} uses {banned}*"


def test_limits_catalogue_parses_for_the_limits_library() -> None:
    catalogue = Catalogue.from_mapping(SHIPPED.policy_data["limits"])
    assert catalogue.scopes == ("subject", "app", "ip", "prefix")
    assert catalogue.quotas["records_day"].measure == "records"
    assert catalogue.quotas["records_day"].window_seconds == 86400
    assert catalogue.quotas["cost_hour"].window_seconds == 3600


# --------------------------------------------------------------------- realistic requests


def member(**changes: Any) -> dict[str, Any]:
    subject = {
        "id": "u7", "authenticated": True, "roles": [], "scopes": [], "tier": None,
        "verified": False, "account_age_days": 400,
    }
    subject.update(changes)
    return subject


ANONYMOUS = {
    "id": None, "authenticated": False, "roles": [], "scopes": [], "tier": None,
    "verified": False, "account_age_days": None,
}

PROFILE_FIELDS = [
    {"coordinate": "User.handle", "tags": [], "count": 25},
    {"coordinate": "User.displayName", "tags": [], "count": 25},
    {"coordinate": "User.email", "tags": ["pii", "contact"], "count": 25},
    {"coordinate": "User.location", "tags": ["pii", "location"], "count": 25},
]


def plan_input(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "subject": member(),
        "client": {"ip": "203.0.113.9", "prefix": "203.0.113.0/24", "app": None,
                   "user_agent": "Mozilla/5.0"},
        "purpose": None,
        "operation": {"protocol": "graphql", "type": "query", "name": "Users",
                      "complexity": {"depth": 3, "aliases": 0, "fields": 4, "cost": 27,
                                     "max_list": 25}},
        "fields": copy.deepcopy(PROFILE_FIELDS),
        "usage": {"subject": {"records_day": 120, "cost_hour": 300}, "app": {},
                  "ip": {"records_day": 400}, "prefix": {"records_day": 900}},
        "signals": {"enumeration_score": 0.05, "distinct_subjects_day": 40},
    }
    doc.update(changes)
    return doc


def decide_plan(engine: RegorusEngine, doc: dict[str, Any]) -> Plan:
    decision = engine.evaluate("fieldguard.plan", doc)
    return Plan.parse(decision.require())


def test_ordinary_member_request(regorus_shipped: RegorusEngine) -> None:
    plan = decide_plan(regorus_shipped, plan_input())
    assert plan.allow and plan.outcome == "allow" and plan.status == 200
    assert plan.effect("User.handle").effect == "allow"
    assert plan.effect("User.email").effect == "check"
    assert plan.effect("User.email").mask == "email"
    assert plan.effect("User.notInTheQuery").effect == "deny"  # fail closed
    assert plan.limits == {"max_page_size": 100, "max_depth": 10, "max_aliases": 15,
                           "max_cost": 1000}
    by_scope = {(c["scope"], c["quota"]): c for c in plan.charges}
    records = by_scope["subject", "records_day"]
    assert records["key"] == "u7" and records["limit"] == 600
    assert records["measure"] == "records" and records["window_seconds"] == 86400
    assert by_scope["subject", "cost_hour"]["limit"] == 5000
    assert by_scope["prefix", "records_day"]["key"] == "203.0.113.0/24"
    assert {c["scope"] for c in plan.charges} == {"subject", "ip", "prefix"}


def test_verified_and_new_accounts(regorus_shipped: RegorusEngine) -> None:
    verified = decide_plan(regorus_shipped, plan_input(subject=member(verified=True)))
    fresh = decide_plan(regorus_shipped, plan_input(subject=member(account_age_days=3)))

    def records(plan: Plan) -> int:
        return next(c["limit"] for c in plan.charges
                    if c["scope"] == "subject" and c["quota"] == "records_day")

    assert records(verified) == 6000
    assert records(fresh) == 300
    assert fresh.raw["tier"] == "new"


def test_anonymous_scraper_sees_public_fields_only(regorus_shipped: RegorusEngine) -> None:
    op = {"protocol": "graphql", "type": "query", "name": "Users",
          "complexity": {"depth": 3, "aliases": 0, "fields": 4, "cost": 27, "max_list": 20}}
    usage = {"ip": {"records_day": 40}, "prefix": {"records_day": 900}}
    plan = decide_plan(regorus_shipped, plan_input(subject=ANONYMOUS, operation=op, usage=usage))
    assert plan.allow
    assert plan.effect("User.handle").effect == "allow"
    assert plan.effect("User.email").effect == "deny"
    assert plan.effect("User.location").effect == "deny"
    assert plan.limits["max_page_size"] == 20
    ip_records = next(c for c in plan.charges if c["scope"] == "ip" and c["quota"] == "records_day")
    assert ip_records["limit"] == 100  # anonymous tier, counted per address
    # A bigger page is refused for anonymous callers (GitHub allows 100 to members).
    op["complexity"]["max_list"] = 50
    big = decide_plan(regorus_shipped, plan_input(subject=ANONYMOUS, operation=op, usage=usage))
    assert big.outcome == "invalid"
    # The anonymous daily quota counts against the address.
    usage["ip"]["records_day"] = 100
    op["complexity"]["max_list"] = 20
    spent = decide_plan(regorus_shipped, plan_input(subject=ANONYMOUS, operation=op, usage=usage))
    assert spent.outcome == "throttle"


def test_enumerating_anonymous_caller_denied_member_challenged(
    regorus_shipped: RegorusEngine,
) -> None:
    signals = {"enumeration_score": 0.93, "distinct_subjects_day": 40}
    anon = decide_plan(regorus_shipped, plan_input(subject=ANONYMOUS, signals=signals))
    assert anon.outcome == "deny" and anon.status == 403
    assert [r.code for r in anon.reasons] == ["enumeration.suspected"]
    known = decide_plan(regorus_shipped, plan_input(signals=signals))
    assert known.outcome == "challenge" and known.raw["code"] == "CHALLENGE_REQUIRED"
    assert not known.allow


def test_rotating_keys_in_one_prefix_are_throttled(regorus_shipped: RegorusEngine) -> None:
    # Each of 20 accounts on one /24 read 500 records today: every account is
    # under its own 600, the /24 is over its 10,000.
    usage = {"subject": {"records_day": 500}, "ip": {"records_day": 500},
             "prefix": {"records_day": 20 * 500}}
    plan = decide_plan(regorus_shipped, plan_input(usage=usage))
    assert plan.outcome == "throttle" and plan.status == 429
    assert plan.retry_after == 3600
    assert [(r.code) for r in plan.reasons] == ["quota.records_day"]
    assert plan.raw["reasons"][0]["scope"] == "prefix"
    assert all(e.effect == "deny" for e in plan.fields.values())


def test_static_caps_answer_400(regorus_shipped: RegorusEngine) -> None:
    op = {"protocol": "graphql", "type": "query", "name": "Dump",
          "complexity": {"depth": 14, "aliases": 40, "fields": 900, "cost": 25000,
                         "max_list": 500}}
    plan = decide_plan(regorus_shipped, plan_input(operation=op))
    assert plan.outcome == "invalid" and plan.status == 400
    assert [r.code for r in plan.reasons] == [
        "query.aliases", "query.cost", "query.depth", "query.page_size"]


def test_blocked_network_denied_before_anything_else(regorus_shipped: RegorusEngine) -> None:
    client = {"ip": "198.51.100.77", "prefix": "198.51.100.0/24", "app": None, "user_agent": "x"}
    op = {"protocol": "graphql", "type": "query", "name": "Dump",
          "complexity": {"depth": 40}}
    plan = decide_plan(regorus_shipped, plan_input(client=client, operation=op))
    assert plan.outcome == "deny"
    assert [r.code for r in plan.reasons] == ["network.blocked"]


def test_partner_outside_its_contract(regorus_shipped: RegorusEngine) -> None:
    client = {"ip": "203.0.113.9", "prefix": "203.0.113.0/24", "app": "partner-x",
              "user_agent": "partner-x/2.1"}
    inside = decide_plan(regorus_shipped, plan_input(
        client=client, fields=[PROFILE_FIELDS[0], PROFILE_FIELDS[2]]))
    assert inside.allow
    assert {(c["scope"], c["quota"]) for c in inside.charges} >= {
        ("app", "records_day"), ("app", "records_month")}
    outside = decide_plan(regorus_shipped, plan_input(client=client))
    assert outside.outcome == "deny"
    assert [r.code for r in outside.reasons] == ["client.coordinate"]


def test_support_agent_sees_contact_data_masked(regorus_shipped: RegorusEngine) -> None:
    plan = decide_plan(regorus_shipped, plan_input(subject=member(roles=["support"]),
                                                   purpose="support"))
    assert plan.allow
    assert (plan.effect("User.email").effect, plan.effect("User.email").mask) == ("mask", "email")
    impostor = decide_plan(regorus_shipped, plan_input(purpose="support"))
    assert impostor.outcome == "deny"
    assert [r.code for r in impostor.reasons] == ["purpose.role"]


def objects_input(subject: dict[str, Any], purpose: str | None,
                  coordinates: list[str], objects: list[dict[str, Any]]) -> dict[str, Any]:
    doc = plan_input(subject=subject, purpose=purpose)
    del doc["fields"], doc["usage"]
    doc["coordinates"] = coordinates
    doc["objects"] = objects
    return doc


def user(relation: str, privacy: dict[str, str] | None = None, visibility: str = "public",
         consent: list[str] | None = None) -> dict[str, Any]:
    return {"type": "User", "relation": relation,
            "attrs": {"privacy": privacy or {}, "visibility": visibility,
                      "consent": consent or []}}


def test_objects_honour_each_subjects_settings(regorus_shipped: RegorusEngine) -> None:
    objs = [
        user("other", {"email": "everyone", "location": "nobody"}),
        user("other"),  # defaults: email nobody, location authenticated
        user("self", {"email": "nobody"}),
        user("other", visibility="private"),
        user("other", visibility="suspended"),
    ]
    doc = objects_input(member(), None, ["User.email", "User.location", "Post.body"], objs)
    decision = regorus_shipped.evaluate("fieldguard.objects", doc)
    verdicts = parse_objects(decision.require(), len(objs))
    assert [v.visible for v in verdicts] == [True, True, True, False, False]
    assert [v.effect("User.email").effect for v in verdicts] == [
        "allow", "deny", "allow", "deny", "deny"]
    assert [v.effect("User.location").effect for v in verdicts] == [
        "deny", "allow", "allow", "deny", "deny"]
    assert all("Post.body" not in v.fields for v in verdicts)


def test_objects_consent_for_analytics(regorus_shipped: RegorusEngine) -> None:
    objs = [user("other", {"location": "everyone"}, consent=["analytics"]),
            user("other", {"location": "everyone"})]
    doc = objects_input(member(), "analytics", ["User.birthday", "User.location"], objs)
    verdicts = parse_objects(regorus_shipped.evaluate("fieldguard.objects", doc).require(), 2)
    assert verdicts[0].effect("User.birthday").effect == "allow"
    assert (verdicts[0].effect("User.location").effect,
            verdicts[0].effect("User.location").mask) == ("mask", "truncate")
    assert verdicts[1].effect("User.birthday").effect == "deny"
    assert verdicts[1].effect("User.location").effect == "deny"


def test_staff_see_suspended_profiles(regorus_shipped: RegorusEngine) -> None:
    doc = objects_input(member(roles=["moderator"]), "moderation", ["User.email"],
                        [user("other", visibility="suspended")])
    [verdict] = parse_objects(regorus_shipped.evaluate("fieldguard.objects", doc).require(), 1)
    assert verdict.visible
    assert verdict.effect("User.email").effect == "mask"


@pytest.mark.parametrize("ip", ["2001:db8:1:2:3:4:5:6", "2001:DB8::1", "::1", "0:0:1:2::9",
                                "2001:db8:0:12::1", "198.18.7.200"])
def test_derived_prefix_matches_the_limits_library(regorus_shipped: RegorusEngine,
                                                   ip: str) -> None:
    client = {"ip": ip, "app": None, "user_agent": "x"}  # no prefix: the policy derives it
    plan = decide_plan(regorus_shipped, plan_input(client=client))
    [key] = {c["key"] for c in plan.charges if c["scope"] == "prefix"}
    assert key == ip_prefix(ipaddress.ip_address(ip))


# --------------------------------------------------------------------- both engines agree


def _normal(value: Any) -> Any:
    """JSON-comparable form: integral floats as ints (OPA may print 0 as 0.0)."""
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    return value


def _opa(engine: Any, path: str, doc: dict[str, Any]) -> Any:
    from opa_bindings.engine import OpaUndefinedError

    try:
        return engine.eval_document(path, doc)
    except OpaUndefinedError:
        return None


_names = st.sampled_from(["u7", "u8", "", None, 3])
_coordinates = st.sampled_from([
    "User.handle", "User.email", "User.phone", "User.birthday", "User.location",
    "User.followerCount", "User.moderationNotes", "User.idDocument", "User.passwordHash",
    "Post.body", "Post.location", "Order.address", "Widget.colour",
])
_tags = st.lists(st.sampled_from(["public", "pii", "contact", "location", "internal",
                                  "sensitive", "secret", "weird"]), max_size=3)
_number = st.one_of(st.integers(min_value=0, max_value=20000), st.none(),
                    st.sampled_from([0.0, 0.5, 0.8, 0.95, "7"]))
_subjects = st.fixed_dictionaries({
    "id": _names,
    "authenticated": st.sampled_from([True, False, None, "yes"]),
    "roles": st.one_of(st.lists(st.sampled_from(
        ["support", "staff", "moderator", "dpo", "partner", 4]), max_size=2),
        st.just("support")),
    "tier": st.sampled_from([None, "partner", "verified", "anonymous", "platinum"]),
    "verified": st.sampled_from([True, False, None]),
    "account_age_days": st.sampled_from([None, 0, 29, 30, 400, "old"]),
})
_clients = st.fixed_dictionaries({
    "ip": st.sampled_from(["203.0.113.9", "198.51.100.4", "192.0.2.200", "2001:db8:bad::1",
                           "2001:db8:1:2::3", "bogus", None, 17]),
    "app": st.sampled_from([None, "partner-x", "research-lab", "web", "legacy-scraper-co",
                            "harvester", "", 9]),
}, optional={"prefix": st.sampled_from(["203.0.113.0/24", "not-a-cidr", None])})
_complexity = st.dictionaries(
    st.sampled_from(["depth", "aliases", "fields", "cost", "max_list"]),
    st.one_of(st.integers(min_value=0, max_value=2000), st.just("9")), max_size=5)
_usage = st.one_of(
    st.dictionaries(st.sampled_from(["subject", "app", "ip", "prefix"]),
                    st.dictionaries(st.sampled_from(["records_day", "cost_hour",
                                                     "requests_minute", "subjects_day",
                                                     "records_month"]), _number, max_size=3),
                    max_size=4),
    st.just("lots"))
_plan_inputs = st.fixed_dictionaries({
    "subject": _subjects,
    "client": _clients,
    "purpose": st.sampled_from([None, "support", "analytics", "moderation", "legal",
                                "marketing", 5]),
    "operation": st.fixed_dictionaries({"protocol": st.just("graphql"),
                                        "complexity": _complexity}),
    "fields": st.lists(st.fixed_dictionaries({"coordinate": _coordinates, "tags": _tags,
                                              "count": st.just(1)}), max_size=5),
    "usage": _usage,
    "signals": st.one_of(st.fixed_dictionaries({"enumeration_score": _number,
                                                "distinct_subjects_day": _number}),
                         st.none()),
})
_objects = st.lists(st.one_of(
    st.fixed_dictionaries({
        "type": st.sampled_from(["User", "Post", "Order", 3]),
        "relation": st.sampled_from(["self", "other", None]),
        "attrs": st.fixed_dictionaries({
            "privacy": st.one_of(st.dictionaries(
                st.sampled_from(["email", "phone", "birthday", "location", "followers",
                                 "post_location"]),
                st.sampled_from(["everyone", "authenticated", "nobody", "friends", None]),
                max_size=4), st.just("open")),
            "visibility": st.sampled_from(["public", "members", "private", "suspended",
                                           "unlisted", None]),
            "consent": st.one_of(st.lists(st.sampled_from(["analytics", "marketing"]),
                                          max_size=2), st.none()),
        }),
    }),
    st.just("junk")), max_size=4)

_SETTINGS = settings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.opa_embedded
@_SETTINGS
@given(doc=_plan_inputs)
def test_plan_defined_closed_and_identical_on_both_engines(
    regorus_shipped: RegorusEngine, opa_shipped: Any, doc: dict[str, Any]
) -> None:
    decision = regorus_shipped.evaluate("fieldguard.plan", doc)
    ours = decision.require()
    plan = Plan.parse(ours)
    # Every coordinate asked for has an answer; a refusal releases nothing.
    asked = {f["coordinate"] for f in doc["fields"]}
    assert asked <= set(plan.fields)
    if not plan.allow:
        assert all(e.effect == "deny" for e in plan.fields.values())
    if plan.outcome == "throttle":
        assert plan.retry_after > 0
    assert _normal(ours) == _normal(_opa(opa_shipped, "fieldguard.plan", doc))


@pytest.mark.opa_embedded
@_SETTINGS
@given(doc=_plan_inputs, objs=_objects, coords=st.lists(_coordinates, max_size=5))
def test_objects_defined_and_identical_on_both_engines(
    regorus_shipped: RegorusEngine, opa_shipped: Any, doc: dict[str, Any],
    objs: list[Any], coords: list[str],
) -> None:
    doc = {k: v for k, v in doc.items() if k not in ("fields", "usage")}
    doc["coordinates"] = coords
    doc["objects"] = objs
    ours = regorus_shipped.evaluate("fieldguard.objects", doc).require()
    verdicts = parse_objects(ours, len(objs))
    for obj, verdict in zip(objs, verdicts, strict=True):
        wanted = {c for c in coords if isinstance(obj, dict) and isinstance(obj.get("type"), str)
                  and c.startswith(obj["type"] + ".")}
        assert set(verdict.fields) == wanted
        assert all(e.effect in ("allow", "deny", "mask") for e in verdict.fields.values())
        if not verdict.visible:
            assert all(e.effect == "deny" for e in verdict.fields.values())
    assert _normal(ours) == _normal(_opa(opa_shipped, "fieldguard.objects", doc))
