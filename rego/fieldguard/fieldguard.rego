# fieldguard decision rules (docs/policy-contract.md):
#
#   data.fieldguard.plan     once per request: outcome, per-field effects,
#                            caps, and what to charge to which quota
#   data.fieldguard.objects  once per batch of objects: visibility and
#                            per-object field effects
#
# The logic lives in helper packages (fields, exposure, limits, network,
# clients, purposes, util); this file only ranks what they found.
package fieldguard

import rego.v1

# Other fieldguard packages are referred to by their full path
# (data.fieldguard.util.x), not through `import data.fieldguard.util`:
# regorus resolves an imported alias by evaluating the whole package it
# names, every rule in it, even to read one rule.

# ---------------------------------------------------------------- outcome

# Precedence: deny > invalid > throttle > challenge > allow. A refused
# network or a contract breach is refused even when the query is also too
# big; a query that can never run is answered 400 rather than "retry later".
deny_reasons := ((data.fieldguard.network.reasons | data.fieldguard.clients.reasons) | data.fieldguard.purposes.purpose_problems) | data.fieldguard.limits.deny_reasons

invalid_reasons := data.fieldguard.limits.cap_reasons

throttle_reasons := data.fieldguard.limits.throttle_reasons

challenge_reasons := data.fieldguard.limits.challenge_reasons

outcome := "deny" if {
	count(deny_reasons) > 0
} else := "invalid" if {
	count(invalid_reasons) > 0
} else := "throttle" if {
	count(throttle_reasons) > 0
} else := "challenge" if {
	count(challenge_reasons) > 0
} else := "allow"

reasons_by_outcome := {
	"deny": deny_reasons,
	"invalid": invalid_reasons,
	"throttle": throttle_reasons,
	"challenge": challenge_reasons,
	"allow": set(),
}

allowed if outcome == "allow"

default allowed := false

retry_after := data.fieldguard.limits.retry_after if outcome == "throttle"

default retry_after := 0

# When the request is refused nothing is released: every field says deny, so
# an integration that ignored `allow` would still leak nothing.
plan_fields := data.fieldguard.fields.decisions if {
	outcome == "allow"
} else := {c: {"effect": "deny", "reason": sprintf("request refused (%s)", [outcome])} | some c in data.fieldguard.util.coordinates}

# ---------------------------------------------------------------- plan

plan := {
	"allow": allowed,
	"outcome": outcome,
	"status": data.fieldguard.util.status[outcome],
	"code": data.fieldguard.util.error_code[outcome],
	"reasons": data.fieldguard.util.sorted_reasons(reasons_by_outcome[outcome]),
	"retry_after": retry_after,
	"fields": plan_fields,
	"limits": data.fieldguard.limits.caps,
	"charges": data.fieldguard.limits.charges,
	"tier": data.fieldguard.limits.tier,
	"purpose": data.fieldguard.purposes.purpose_label,
}

# If anything above is undefined (malformed input or data the rules did not
# foresee), the plan still answers, and it refuses.
default plan := {
	"allow": false,
	"outcome": "deny",
	"status": 403,
	"code": "FORBIDDEN",
	"reasons": [{"code": "policy.incomplete", "message": "the policy could not decide this request"}],
	"retry_after": 0,
	"fields": {},
	"limits": {},
	"charges": [],
}

# ---------------------------------------------------------------- objects

objects := data.fieldguard.exposure.result

# Undefined objects would fail closed in Python too; answering "nothing
# visible" keeps the failure visible in the audit as a decision.
default objects := {"objects": []}
