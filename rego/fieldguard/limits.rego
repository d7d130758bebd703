# Scraping limits: which tier the caller is in, the static caps per query,
# the quotas per scope (subject, client app, IP, IP prefix), and the
# enumeration signals. Counting happens outside the policy (the `limits`
# library); the plan sees current usage in input.usage.<scope>.<quota> and
# returns `charges` naming what to count where.
package fieldguard.limits

import rego.v1

# Other fieldguard packages are referred to by their full path
# (data.fieldguard.util.x), not through `import data.fieldguard.util`:
# regorus resolves an imported alias by evaluating the whole package it
# names, every rule in it, even to read one rule.

lim := data.policy.limits

# ---------------------------------------------------------------- tier

# Anonymous callers are always `anonymous`; an explicit tier (e.g. partner)
# applies when it names a tier in limits.yaml; verified accounts are
# `verified`; accounts younger than new_account_days (or of unknown age) are
# `new`; everyone else `standard`.
tier := "anonymous" if {
	not data.fieldguard.util.authenticated
} else := t if {
	t := input.subject.tier
	is_string(t)
	lim.tiers[t]
} else := "verified" if {
	input.subject.verified == true
} else := "new" if {
	not established
} else := "standard"

established if {
	age := input.subject.account_age_days
	is_number(age)
	age >= lim.new_account_days
}

# ---------------------------------------------------------------- static caps

# Global caps, tightened (or loosened) per tier.
caps := object.union(lim.caps, object.get(lim.tiers[tier], "caps", {}))

complexity := c if {
	c := input.operation.complexity
	is_object(c)
} else := {}

measured(k) := v if {
	v := complexity[k]
	is_number(v)
} else := 0

# complexity key -> cap, reason code, wording. Which measure is checked
# against which cap is structure, not a number compliance tunes.
cap_checks := [
	["depth", "max_depth", "query.depth", "query depth"],
	["aliases", "max_aliases", "query.aliases", "aliases (after fragment expansion)"],
	["max_list", "max_page_size", "query.page_size", "page size"],
	["cost", "max_cost", "query.cost", "query cost"],
]

cap_reasons contains {
	"code": code,
	"message": sprintf("%s %v exceeds the limit of %v", [label, value, limit]),
} if {
	some [key, cap, code, label] in cap_checks
	limit := caps[cap]
	value := measured(key)
	value > limit
}

# A complexity measure that is present but not a number cannot be checked:
# refuse rather than guess.
cap_reasons contains {
	"code": "query.malformed",
	"message": sprintf("operation complexity %s must be a number", [key]),
} if {
	some [key, _, _, _] in cap_checks
	v := object.get(complexity, key, 0)
	not is_number(v)
}

# ---------------------------------------------------------------- quotas per scope

# The key each scope counts under; scopes without a key are not charged.
scope_key["subject"] := data.fieldguard.util.subject_id

scope_key["app"] := data.fieldguard.util.app

scope_key["ip"] := data.fieldguard.util.valid_client_ip

scope_key["prefix"] := data.fieldguard.util.prefix

# The limits per scope. A signed-in caller's tier quotas count against their
# subject id; an anonymous caller has no id, so the anonymous tier quotas
# count against the IP (the smaller of tier and IP limit wins).
scope_limits["subject"] := lim.tiers[tier].quotas if data.fieldguard.util.authenticated

scope_limits["app"] := object.get(data.fieldguard.clients.contract, "quotas", {}) if data.fieldguard.clients.contract

scope_limits["ip"] := lim.network_quotas.ip if data.fieldguard.util.authenticated

scope_limits["ip"] := {q: min(values) |
	some q in names
	values := [v | some src in [ip_limits, anon_limits]; v := src[q]]
} if {
	not data.fieldguard.util.authenticated
	ip_limits := lim.network_quotas.ip
	anon_limits := lim.tiers.anonymous.quotas
	names := {q | some q, _ in ip_limits} | {q | some q, _ in anon_limits}
}

scope_limits["prefix"] := lim.network_quotas.prefix

# Already used in the current window (absent = 0). Read inline, not through a
# shared helper: OPA memoises function results by value and would hand back
# an input's 0.0 for a literal 0, making the two engines print different JSON.
used(scope, q) := v if {
	v := input.usage[scope][q]
	is_number(v)
} else := 0

# What this request adds before it runs, per measure: its static cost, or
# one request (other measures: 0). Records and subjects are only known after
# the response. A table looked up per charge rather than a function with a
# definition per measure: regorus evaluates every definition on every call.
pending_by_measure := {"cost": measured("cost"), "requests": 1}

# Every quota that applies, with the key it counts under. Ordered by scope
# (limits.yaml `scopes`), then quota name. Quotas missing from the catalogue
# are ignored (data_test.rego checks there are none).
charges := [charge |
	some scope in lim.scopes
	key := scope_key[scope]
	limits := scope_limits[scope]
	some q in sort([name | some name, _ in limits])
	catalogue := lim.quotas[q]
	limit := limits[q]
	is_number(limit)
	spent := used(scope, q)
	charge := {
		"quota": q,
		"scope": scope,
		"key": key,
		"limit": limit,
		"measure": catalogue.measure,
		"window_seconds": catalogue.window_seconds,
		"used": spent,
		"remaining": max([0, limit - spent]),
	}
]

# A quota is exhausted when it is used up, or when this request's known cost
# would overrun it (GitHub refuses a query costing more than the points left).
exhausted(charge) if charge.used >= charge.limit

exhausted(charge) if {
	p := object.get(pending_by_measure, charge.measure, 0)
	p > 0
	charge.used + p > charge.limit
}

exhausted_charges := [charge | some charge in charges; exhausted(charge)]

throttle_reasons contains {
	"code": sprintf("quota.%s", [charge.quota]),
	"message": sprintf("%s quota for this %s is used up (%v of %v %s)", [charge.quota, charge.scope, charge.used, charge.limit, charge.measure]),
	"scope": charge.scope,
} if {
	some charge in exhausted_charges
}

# Seconds a throttled client should wait: the longest `retry_after` among the
# exhausted quotas (a quota without one: its window).
retry_after := max(waits) if {
	waits := [wait |
		some charge in exhausted_charges
		wait := object.get(lim.quotas[charge.quota], "retry_after", charge.window_seconds)
	]
	count(waits) > 0
} else := 0

# ---------------------------------------------------------------- enumeration

signal(name) := v if {
	v := input.signals[name]
	is_number(v)
} else := 0

enumeration_suspected if signal("enumeration_score") >= lim.enumeration.challenge_score

# Anonymous callers cannot be challenged meaningfully (a new IP is cheap):
# they are refused.
deny_reasons contains {
	"code": "enumeration.suspected",
	"message": "access pattern looks like enumeration of records; sign in to continue",
} if {
	enumeration_suspected
	not data.fieldguard.util.authenticated
}

challenge_reasons contains {
	"code": "enumeration.suspected",
	"message": "access pattern looks like enumeration of records; complete the challenge to continue",
} if {
	enumeration_suspected
	data.fieldguard.util.authenticated
}

challenge_reasons contains {
	"code": "enumeration.breadth",
	"message": sprintf("this account read %v distinct people's records today", [signal("distinct_subjects_day")]),
} if {
	data.fieldguard.util.authenticated
	signal("distinct_subjects_day") >= lim.enumeration.distinct_subjects_day
}
