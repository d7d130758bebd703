# The two decisions end to end: outcome precedence, result shape (as the
# contract fixes it), and failing closed.
package fieldguard_test

import rego.v1

import data.fieldguard
import data.fieldguard.fixtures_test as fx

plan_for(inp) := p if {
	p := fieldguard.plan with input as inp
}

blocked_client := object.union(fx.client, {"ip": "198.51.100.23", "prefix": "198.51.100.0/24"})

too_deep := object.union(fx.small_query, {"complexity": {"depth": 40}})

used_up := {"subject": {"records_day": 600}}

suspicious := {"enumeration_score": 0.9, "distinct_subjects_day": 0}

# ---------------------------------------------------------------- allow

test_plan_allows_an_ordinary_request if {
	p := plan_for(fx.plan_input)
	p.allow == true
	p.outcome == "allow"
	p.status == 200
	p.reasons == []
	p.retry_after == 0
	p.tier == "standard"
	p.purpose == "default"
	p.fields["User.handle"].effect == "allow"
	p.fields["User.email"] == {"effect": "check", "mask": "email", "reason": "the data subject's privacy settings apply"}
	p.limits == {"max_page_size": 100, "max_depth": 10, "max_aliases": 15, "max_cost": 1000}
}

test_plan_has_the_contract_keys if {
	p := plan_for(fx.plan_input)
	required := {"allow", "outcome", "status", "reasons", "retry_after", "fields", "limits", "charges"}
	count(required - {k | some k, _ in p}) == 0
	every c in p.charges {
		count({"quota", "scope", "key", "limit", "measure", "window_seconds"} - {k | some k, _ in c}) == 0
	}
}

test_every_field_gets_an_entry if {
	p := plan_for(fx.plan_input)
	{c | some c, _ in p.fields} == {f.coordinate | some f in fx.profile_fields}
	every _, e in p.fields {
		e.effect in {"allow", "deny", "mask", "check"}
	}
}

test_anonymous_plan if {
	p := plan_for(fx.plan_with({"subject": fx.anonymous}))
	p.outcome == "allow"
	p.tier == "anonymous"
	p.fields["User.handle"].effect == "allow"
	p.fields["User.email"].effect == "deny"
	p.limits.max_page_size == data.policy.limits.tiers.anonymous.caps.max_page_size
}

# ---------------------------------------------------------------- precedence

test_deny_beats_everything if {
	p := plan_for(fx.plan_with({
		"client": blocked_client,
		"operation": too_deep,
		"usage": used_up,
		"signals": suspicious,
	}))
	p.outcome == "deny"
	p.status == 403
	p.allow == false
	p.code == "FORBIDDEN"
	[r.code | some r in p.reasons] == ["network.blocked"]
}

test_invalid_beats_throttle_and_challenge if {
	p := plan_for(fx.plan_with({"operation": too_deep, "usage": used_up, "signals": suspicious}))
	p.outcome == "invalid"
	p.status == 400
	[r.code | some r in p.reasons] == ["query.depth"]
	p.retry_after == 0
}

test_throttle_beats_challenge if {
	p := plan_for(fx.plan_with({"usage": used_up, "signals": suspicious}))
	p.outcome == "throttle"
	p.status == 429
	p.code == "RATE_LIMITED"
	p.retry_after == data.policy.limits.quotas.records_day.retry_after
	p.retry_after > 0
	[r.code | some r in p.reasons] == ["quota.records_day"]
}

test_challenge if {
	p := plan_for(fx.plan_with({"signals": suspicious}))
	p.outcome == "challenge"
	p.status == 403
	p.code == "CHALLENGE_REQUIRED"
	p.allow == false
}

test_anonymous_enumeration_is_denied if {
	p := plan_for(fx.plan_with({"subject": fx.anonymous, "signals": suspicious}))
	p.outcome == "deny"
	[r.code | some r in p.reasons] == ["enumeration.suspected"]
}

test_contract_breach_denied if {
	p := plan_for(fx.plan_with({
		"client": object.union(fx.client, {"app": "partner-x"}),
		"fields": [fx.field("User.phone", ["pii", "contact"])],
	}))
	p.outcome == "deny"
	[r.code | some r in p.reasons] == ["client.coordinate"]
}

test_purpose_misuse_denied if {
	p := plan_for(fx.plan_with({"purpose": "legal"}))
	p.outcome == "deny"
	[r.code | some r in p.reasons] == ["purpose.role"]
}

test_reasons_sorted_by_code if {
	p := plan_for(fx.plan_with({"client": object.union(blocked_client, {"app": "harvester"}), "purpose": "nonsense"}))
	[r.code | some r in p.reasons] == ["client.unknown", "network.blocked", "purpose.unknown"]
}

# ---------------------------------------------------------------- refusals release nothing

test_refused_plan_denies_every_field if {
	p := plan_for(fx.plan_with({"usage": used_up}))
	{c | some c, _ in p.fields} == {f.coordinate | some f in fx.profile_fields}
	every _, e in p.fields {
		e == {"effect": "deny", "reason": "request refused (throttle)"}
	}
}

test_refused_plan_still_lists_charges if {
	# Refused requests count (e.g. requests_minute) so hammering does not pay.
	p := plan_for(fx.plan_with({"usage": used_up}))
	count(p.charges) > 0
}

# ---------------------------------------------------------------- failing closed

test_empty_input_is_refused if {
	# No subject, no client address: anonymous and unidentifiable.
	p := plan_for({})
	p.allow == false
	p.outcome == "deny"
	[r.code | some r in p.reasons] == ["network.unidentified"]
}

test_garbage_input_is_refused if {
	p := plan_for({"subject": "root", "client": ["x"], "purpose": {"a": 1}, "operation": 7, "fields": "all", "usage": [], "signals": null})
	p.allow == false
}

test_plan_defined_without_policy_data if {
	# Policy data missing entirely: the default plan refuses.
	p := plan_for(fx.plan_input) with data.policy as {}
	p.allow == false
	p.outcome == "deny"
}

# ---------------------------------------------------------------- objects

test_objects_decision if {
	inp := fx.objects_input(fx.member, null, ["User.handle", "User.email"], [
		fx.user("other", object.union(fx.public_attrs, {"privacy": {"email": "everyone"}})),
		fx.user("other", object.union(fx.public_attrs, {"visibility": "private"})),
		fx.user("self", object.union(fx.public_attrs, {"visibility": "private"})),
	])
	r := fieldguard.objects with input as inp
	[o.visible | some o in r.objects] == [true, false, true]
	[o.fields["User.email"].effect | some o in r.objects] == ["allow", "deny", "allow"]
}

test_objects_defined_for_empty_input if {
	r := fieldguard.objects with input as {}
	r == {"objects": []}
}
