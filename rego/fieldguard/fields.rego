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

# Most of a coordinate's answer depends only on its tags, and the coordinates
# of a request share a handful of tag sets (8 profile fields: 4 sets), so the
# tag-only part is decided once per distinct tag set of the request (a
# verdict) and each coordinate adds what depends on its name: the client
# contract, its privacy key and its masker. Per coordinate that is a few
# lookups instead of the whole chain of set operations and messages, which
# regorus would re-run for every coordinate.

# Every coordinate a decision asks about: the plan's input.fields, the
# objects decision's input.coordinates.
asked := data.fieldguard.util.coordinates | data.fieldguard.exposure.requested

asked_tags := {c: tags(c) | some c in asked}

tag_sets := {ts | some _, ts in asked_tags}

tag_verdicts := {ts: tag_verdict(ts) | some ts in tag_sets}

# The tag-only answer, in order of precedence: the first reason to deny (in
# order of how fundamental it is), then why the answer depends on each data
# subject (consent before personal data: a coordinate's own privacy key sits
# between the two, see coordinate_effect), then masking, else allow.
tag_verdict(ts) := {"kind": "deny", "reason": r} if {
	r := tag_deny_reason(ts)
} else := {"kind": "consent", "reason": sprintf("purpose %s needs the data subject's consent", [purpose_name])} if {
	requires_consent
	personal_tags(ts)
} else := {"kind": "personal", "reason": "personal data: the data subject's privacy settings apply"} if {
	honours_privacy
	personal_tags(ts)
} else := {"kind": "mask", "reason": r} if {
	r := masked_reason(ts)
} else := {"kind": "allow", "reason": sprintf("purpose %s allows %s data", [purpose_name, concat(", ", sort(ts))])}

tag_deny_reason(ts) := sprintf("tagged %s: never released through the API", [concat(", ", sort(found))]) if {
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

masked_reason(ts) := sprintf("purpose %s releases %s data masked", [purpose_name, concat(", ", sort(masked))]) if {
	masked := ts & purpose_mask_tags
	count(masked) > 0
}

# Request-wide denials come first: every coordinate gets the same answer.
request_denial := {"effect": "deny", "reason": request_deny_reason}

# Otherwise a coordinate's effect comes from the client contract, then its
# tags' verdict v; a coordinate with a privacy key is checked (when the
# purpose honours privacy settings) unless the verdict denies it or asks for
# consent.
contracted_effect(c, v) := {"effect": "deny", "reason": sprintf("client app %s is not contracted to read %s", [data.fieldguard.util.app, c])} if {
	not data.fieldguard.clients.allows_coordinate(c)
} else := {"effect": "deny", "reason": v.reason} if {
	v.kind == "deny"
} else := {"effect": "check", "mask": masker(c), "reason": v.reason} if {
	v.kind == "consent"
} else := {"effect": "check", "mask": masker(c), "reason": "the data subject's privacy settings apply"} if {
	honours_privacy
	privacy_key(c)
} else := {"effect": "check", "mask": masker(c), "reason": v.reason} if {
	v.kind == "personal"
} else := {"effect": "mask", "mask": masker(c), "reason": v.reason} if {
	v.kind == "mask"
} else := {"effect": "allow", "reason": v.reason}

asked_effects := {c: request_denial | some c in asked} if {
	request_denial
} else := {c: contracted_effect(c, tag_verdicts[ts]) | some c, ts in asked_tags}

# The effect for any coordinate (asked about or not).
effect(c) := e if {
	e := asked_effects[c]
} else := request_denial if {
	request_denial
} else := contracted_effect(c, tag_verdict(tags(c)))

# The plan's per-field answer for every coordinate the operation touches.
decisions := {c: asked_effects[c] | some c in data.fieldguard.util.coordinates}
