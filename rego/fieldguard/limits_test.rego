package fieldguard.limits_test

import rego.v1

import data.fieldguard.fixtures_test as fx
import data.fieldguard.limits

lim := data.policy.limits

tier_of(subject) := t if {
	t := limits.tier with input as fx.plan_with({"subject": subject})
}

with_complexity(c) := fx.plan_with({"operation": object.union(fx.small_query, {"complexity": c})})

cap_codes(c) := found if {
	found := {r.code | some r in limits.cap_reasons} with input as with_complexity(c)
}

charges_for(inp) := found if {
	found := limits.charges with input as inp
}

charge(charges, scope, quota) := c if {
	some c in charges
	c.scope == scope
	c.quota == quota
}

throttle_codes(inp) := found if {
	found := {r.code | some r in limits.throttle_reasons} with input as inp
}

# ---------------------------------------------------------------- tiers

test_tier_anonymous if {
	tier_of(fx.anonymous) == "anonymous"
	# An anonymous caller cannot claim a tier.
	tier_of(object.union(fx.anonymous, {"tier": "partner"})) == "anonymous"
}

test_tier_new_account if {
	tier_of(object.union(fx.member, {"account_age_days": lim.new_account_days - 1})) == "new"
	tier_of(object.union(fx.member, {"account_age_days": lim.new_account_days})) == "standard"
}

test_tier_unknown_age_is_new if {
	tier_of(object.union(fx.member, {"account_age_days": null})) == "new"
	tier_of(object.union(fx.member, {"account_age_days": "400"})) == "new"
}

test_tier_verified if {
	tier_of(object.union(fx.member, {"verified": true})) == "verified"
	tier_of(object.union(fx.member, {"verified": true, "account_age_days": 2})) == "verified"
}

test_tier_override if {
	tier_of(object.union(fx.member, {"tier": "partner"})) == "partner"
	# A tier that limits.yaml does not define is ignored.
	tier_of(object.union(fx.member, {"tier": "platinum"})) == "standard"
}

test_records_per_day_follow_public_platforms if {
	# X (2023): 600 posts/day unverified, 6,000 verified.
	lim.tiers.standard.quotas.records_day == 600
	lim.tiers.verified.quotas.records_day == 6000
	lim.tiers.anonymous.quotas.records_day < lim.tiers.new.quotas.records_day
	lim.tiers.new.quotas.records_day < lim.tiers.standard.quotas.records_day
}

# ---------------------------------------------------------------- caps

test_caps_within_limits if {
	cap_codes({"depth": 10, "aliases": 15, "max_list": 100, "cost": 1000}) == set()
}

test_depth_cap if {
	cap_codes({"depth": lim.caps.max_depth + 1}) == {"query.depth"}
}

test_alias_cap if {
	cap_codes({"aliases": 16}) == {"query.aliases"}
}

test_page_size_cap if {
	cap_codes({"max_list": 101}) == {"query.page_size"}
}

test_cost_cap if {
	cap_codes({"cost": 1001}) == {"query.cost"}
}

test_several_caps_reported_together if {
	cap_codes({"depth": 50, "aliases": 50, "max_list": 5000, "cost": 99999}) == {"query.depth", "query.aliases", "query.page_size", "query.cost"}
}

test_cap_message if {
	some r in limits.cap_reasons with input as with_complexity({"depth": 12})
	r.message == "query depth 12 exceeds the limit of 10"
}

test_anonymous_caps_are_tighter if {
	caps := limits.caps with input as fx.plan_with({"subject": fx.anonymous})
	caps.max_page_size == lim.tiers.anonymous.caps.max_page_size
	caps.max_page_size < lim.caps.max_page_size
	caps.max_depth == lim.caps.max_depth
	found := {r.code | some r in limits.cap_reasons} with input as fx.plan_with({
		"subject": fx.anonymous,
		"operation": object.union(fx.small_query, {"complexity": {"max_list": 50}}),
	})
	found == {"query.page_size"}
}

test_malformed_complexity_refused if {
	cap_codes({"depth": "3"}) == {"query.malformed"}
}

test_missing_complexity_counts_as_zero if {
	found := {r.code | some r in limits.cap_reasons} with input as fx.plan_with({"operation": {"protocol": "rest"}})
	found == set()
}

# ---------------------------------------------------------------- charges

test_member_charged_per_subject_ip_and_prefix if {
	cs := charges_for(fx.plan_input)
	{c.scope | some c in cs} == {"subject", "ip", "prefix"}
	c := charge(cs, "subject", "records_day")
	c.key == "u7"
	c.limit == lim.tiers.standard.quotas.records_day
	c.measure == "records"
	c.window_seconds == 86400
	charge(cs, "ip", "records_day").key == "203.0.113.9"
	charge(cs, "prefix", "records_day").key == "203.0.113.0/24"
	charge(cs, "prefix", "records_day").limit == lim.network_quotas.prefix.records_day
}

test_anonymous_tier_quotas_count_against_the_ip if {
	cs := charges_for(fx.plan_with({"subject": fx.anonymous}))
	{c.scope | some c in cs} == {"ip", "prefix"}
	charge(cs, "ip", "records_day").limit == min([lim.tiers.anonymous.quotas.records_day, lim.network_quotas.ip.records_day])
}

test_app_charged_per_contract if {
	cs := charges_for(fx.plan_with({"client": object.union(fx.client, {"app": "partner-x"})}))
	charge(cs, "app", "records_month").limit == data.policy.clients.apps["partner-x"].quotas.records_month
	charge(cs, "app", "records_month").window_seconds == lim.quotas.records_month.window_seconds
	# First-party apps without per-app quotas add no app charges.
	web := charges_for(fx.plan_with({"client": object.union(fx.client, {"app": "web"})}))
	{c.scope | some c in web} == {"subject", "ip", "prefix"}
}

test_prefix_derived_when_integration_omits_it if {
	inp := json.patch(fx.plan_input, [{"op": "replace", "path": "/client", "value": {"ip": "198.18.4.77", "app": null}}])
	cs := charges_for(inp)
	charge(cs, "prefix", "records_day").key == "198.18.4.0/24"
}

test_charges_show_remaining if {
	cs := charges_for(fx.plan_with({"usage": {"subject": {"records_day": 450}}}))
	c := charge(cs, "subject", "records_day")
	c.used == 450
	c.remaining == c.limit - 450
}

# ---------------------------------------------------------------- throttling

test_under_quota_not_throttled if {
	throttle_codes(fx.plan_with({"usage": {"subject": {"records_day": 599}}})) == set()
}

test_daily_records_used_up if {
	throttle_codes(fx.plan_with({"usage": {"subject": {"records_day": 600}}})) == {"quota.records_day"}
}

test_prefix_quota_catches_rotating_accounts if {
	# 20 accounts on one /24, each well inside its own quota, together over
	# the prefix quota.
	inp := fx.plan_with({"usage": {
		"subject": {"records_day": 100},
		"ip": {"records_day": 100},
		"prefix": {"records_day": 20 * 550},
	}})
	reasons := limits.throttle_reasons with input as inp
	[r.scope | some r in reasons] == ["prefix"]
}

test_cost_that_would_overrun_the_hour_is_throttled if {
	# 4,990 of 5,000 points used; this query costs 20.
	throttle_codes(fx.plan_with({"usage": {"subject": {"cost_hour": 4990}}})) == {"quota.cost_hour"}
	throttle_codes(fx.plan_with({"usage": {"subject": {"cost_hour": 4980}}})) == set()
}

test_request_rate if {
	throttle_codes(fx.plan_with({"usage": {"ip": {"requests_minute": lim.network_quotas.ip.requests_minute}}})) == {"quota.requests_minute"}
}

test_app_monthly_cap if {
	inp := fx.plan_with({
		"client": object.union(fx.client, {"app": "partner-x"}),
		"usage": {"app": {"records_month": 400000}},
	})
	throttle_codes(inp) == {"quota.records_month"}
}

test_retry_after_is_the_longest_wait if {
	inp := fx.plan_with({"usage": {"subject": {"records_day": 600, "requests_minute": 120}}})
	limits.retry_after == lim.quotas.records_day.retry_after with input as inp
	limits.retry_after == 0 with input as fx.plan_input
}

test_malformed_usage_counts_as_zero if {
	throttle_codes(fx.plan_with({"usage": "lots"})) == set()
	throttle_codes(fx.plan_with({"usage": {"subject": {"records_day": "600"}}})) == set()
}

# ---------------------------------------------------------------- enumeration

test_enumeration_challenges_members if {
	inp := fx.plan_with({"signals": {"enumeration_score": lim.enumeration.challenge_score}})
	{r.code | some r in limits.challenge_reasons} == {"enumeration.suspected"} with input as inp
	limits.deny_reasons == set() with input as inp
}

test_enumeration_denies_anonymous if {
	inp := fx.plan_with({"subject": fx.anonymous, "signals": {"enumeration_score": 0.95}})
	{r.code | some r in limits.deny_reasons} == {"enumeration.suspected"} with input as inp
	limits.challenge_reasons == set() with input as inp
}

test_low_enumeration_score_passes if {
	inp := fx.plan_with({"signals": {"enumeration_score": 0.79}})
	limits.challenge_reasons == set() with input as inp
}

test_breadth_of_subjects_challenges if {
	inp := fx.plan_with({"signals": {"enumeration_score": 0, "distinct_subjects_day": lim.enumeration.distinct_subjects_day}})
	{r.code | some r in limits.challenge_reasons} == {"enumeration.breadth"} with input as inp
}
