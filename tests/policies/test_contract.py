from __future__ import annotations

from typing import Any

import pytest

from fieldguard.errors import MalformedDecision
from fieldguard.policies.contract import Plan, parse_objects


def test_plan_parses_and_missing_coordinates_are_denied() -> None:
    plan = Plan.parse({"allow": True, "outcome": "allow", "status": 200,
                       "reasons": [{"code": "x", "message": "y", "scope": "prefix",
                                    "rule": "10.0.0.0/8"}],
                       "fields": {"User.email": {"effect": "check", "mask": "email"}},
                       "charges": [{"quota": "q"}], "limits": {"max_page_size": 100}})
    assert plan.allow and plan.effect("User.email").effect == "check"
    assert plan.effect("User.nothing").effect == "deny"
    assert plan.reasons[0].as_dict() == {"code": "x", "message": "y", "scope": "prefix"}


@pytest.mark.parametrize("raw", [
    None, [], {"allow": True, "outcome": "deny"}, {"outcome": "maybe"},
    {"allow": True, "fields": {"A.b": {"effect": "obliterate"}}},
    {"allow": True, "fields": {"A.b": {"effect": "mask"}}},
    {"allow": True, "fields": {"A.b": "allow"}},
    {"allow": True, "reasons": "nope"}, {"allow": True, "charges": [1]},
    {"allow": True, "status": "200"}, {"allow": True, "limits": []},
])
def test_malformed_plans_are_rejected(raw: Any) -> None:
    with pytest.raises(MalformedDecision):
        Plan.parse(raw)


def test_refusal_outcomes_default_their_status() -> None:
    assert Plan.parse({"outcome": "throttle"}).status == 429
    assert Plan.parse({"outcome": "invalid"}).status == 400
    assert not Plan.parse({"outcome": "challenge"}).allow


def test_objects_results_must_match_the_batch() -> None:
    ok = parse_objects({"objects": [{"visible": True, "fields": {"U.e": {"effect": "mask",
                                                                         "mask": "email"}}}]}, 1)
    assert ok[0].effect("U.e").mask == "email" and ok[0].effect("U.x").effect == "deny"
    for raw, n in [({"objects": []}, 1), ({"objects": [1]}, 1), ({}, 0),
                   ({"objects": [{"visible": True, "fields": {"U.e": {"effect": "check"}}}]}, 1)]:
        with pytest.raises(MalformedDecision):
            parse_objects(raw, n)
    assert parse_objects({"objects": [{"visible": "yes"}]}, 1)[0].visible is False
