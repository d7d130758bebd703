# Data exposure per coordinate (`Type.field`): what the plan says about each
# field before any object is read.
#
#   deny   - this caller may not read it at all (purpose, role, anonymity,
#            client contract, never-released tags)
#   check  - it depends on each data subject (their privacy settings, their
#            consent); the objects decision answers per object
#   mask   - released only through the masker (classification `mask`)
#   allow  - released as is
#
# The strictest applicable effect wins: deny > check > mask > allow.
package fieldguard.fields

import rego.v1

# Other fieldguard packages are referred to by their full path
# (data.fieldguard.util.x), not through `import data.fieldguard.util`:
# regorus resolves an imported alias by evaluating the whole package it
# names, every rule in it, even to read one rule.

cls := data.policy.classification

pur := data.policy.purposes

# ---------------------------------------------------------------- tags

# Tags of a coordinate. Compliance data replaces code-side tags; coordinates
# known to neither get default_tags.
tags(c) := {t | some t in entry.tags} if {
	entry := cls.coordinates[c]
	is_array(entry.tags)
} else := found if {
	found := code_tags(c)
	count(found) > 0
} else := default_tags

default_tags := {t | some t in cls.default_tags}

# Tags the API code attached (all paths that reach the coordinate, united).
code_tags(c) := {t |
	some f in data.fieldguard.util.array_or_empty(object.get(input, "fields", []))
	is_object(f)
	f.coordinate == c
	some t in data.fieldguard.util.array_or_empty(object.get(f, "tags", []))
	is_string(t)
}

# Personal data: any of the tags is a personal tag (purposes.yaml).
personal_tags(ts) if {
	some t in ts
	t in pur.personal_tags
}

privacy_key(c) := k if {
	k := cls.coordinates[c].privacy
	is_string(k)
}

masker(c) := m if {
	m := cls.coordinates[c].mask
	is_string(m)
} else := cls.default_mask

# Roles that may read a gated tag, and the gated tags this caller lacks.
missing_role_tags(ts) := {t |
	some t in ts
	gate := pur.role_gated_tags[t]
	count({r | some r in gate} & data.fieldguard.util.roles) == 0
}

# ---------------------------------------------------------------- the effect

# The effect below is worked out once per coordinate and (for the objects
# decision) once per batch, but from the same few facts about the request
# every time: those are rules, evaluated once per query, and each
# coordinate's tags are looked up once and handed down (function results are
# not memoised by regorus).

# A reason to deny that holds for every coordinate of this request.
request_deny_reason := "the stated purpose is not permitted for this caller" if {
	not data.fieldguard.purposes.purpose_ok
} else := "the request is outside the client app's contract" if {
	count(data.fieldguard.clients.reasons) > 0
}

never_release_tags := {t | some t in pur.never_release_tags}

anonymous_tags := {t | some t in pur.anonymous_tags}

requires_consent if data.fieldguard.purposes.purpose_flag("requires_consent")

honours_privacy if data.fieldguard.purposes.purpose_flag("honours_privacy")

purpose_name := data.fieldguard.purposes.purpose_name

purpose_tags := data.fieldguard.purposes.purpose_tags

purpose_mask_tags := data.fieldguard.purposes.purpose_mask_tags

# The first reason to deny, in order of how fundamental it is.
deny_reason(c, _) := request_deny_reason

deny_reason(c, ts) := r if {
	not request_deny_reason
	r := coordinate_deny_reason(c, ts)
}

coordinate_deny_reason(c, ts) := sprintf("client app %s is not contracted to read %s", [data.fieldguard.util.app, c]) if {
	not data.fieldguard.clients.allows_coordinate(c)
} else := sprintf("tagged %s: never released through the API", [concat(", ", sort(found))]) if {
	found := ts & never_release_tags
	count(found) > 0
} else := "anonymous callers see public data only" if {
	not data.fieldguard.util.authenticated
	extra := ts - anonymous_tags
	count(extra) > 0
} else := sprintf("purpose %s does not cover %s data", [purpose_name, concat(", ", sort(extra))]) if {
	extra := ts - purpose_tags
	count(extra) > 0
} else := sprintf("%s data needs a role this caller does not have", [concat(", ", sort(missing))]) if {
	missing := missing_role_tags(ts)
	count(missing) > 0
}

# Why the answer depends on each data subject.
check_reason(c, ts) := sprintf("purpose %s needs the data subject's consent", [purpose_name]) if {
	requires_consent
	personal_tags(ts)
} else := "the data subject's privacy settings apply" if {
	honours_privacy
	privacy_key(c)
} else := "personal data: the data subject's privacy settings apply" if {
	honours_privacy
	personal_tags(ts)
}

masked_reason(ts) := sprintf("purpose %s releases %s data masked", [purpose_name, concat(", ", sort(masked))]) if {
	masked := ts & purpose_mask_tags
	count(masked) > 0
}

effect(c) := tagged_effect(c, tags(c))

tagged_effect(c, ts) := {"effect": "deny", "reason": r} if {
	r := deny_reason(c, ts)
} else := {"effect": "check", "mask": masker(c), "reason": r} if {
	r := check_reason(c, ts)
} else := {"effect": "mask", "mask": masker(c), "reason": r} if {
	r := masked_reason(ts)
} else := {"effect": "allow", "reason": sprintf("purpose %s allows %s data", [purpose_name, concat(", ", sort(ts))])}

# The plan's per-field answer for every coordinate the operation touches.
decisions := {c: effect(c) | some c in data.fieldguard.util.coordinates}
