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

import data.fieldguard.clients
import data.fieldguard.purposes
import data.fieldguard.util

cls := data.policy.classification

pur := data.policy.purposes

# ---------------------------------------------------------------- tags

# Tags of a coordinate. Compliance data replaces code-side tags; coordinates
# known to neither get default_tags.
tags(c) := {t | some t in entry.tags} if {
	entry := cls.coordinates[c]
	is_array(entry.tags)
} else := code_tags(c) if {
	count(code_tags(c)) > 0
} else := {t | some t in cls.default_tags}

# Tags the API code attached (all paths that reach the coordinate, united).
code_tags(c) := {t |
	some f in util.array_or_empty(object.get(input, "fields", []))
	is_object(f)
	f.coordinate == c
	some t in util.array_or_empty(object.get(f, "tags", []))
	is_string(t)
}

personal(c) if {
	some t in tags(c)
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
missing_role_tags(c) := {t |
	some t in tags(c)
	gate := pur.role_gated_tags[t]
	count({r | some r in gate} & util.roles) == 0
}

# ---------------------------------------------------------------- the effect

# The first reason to deny, in order of how fundamental it is.
deny_reason(c) := "the stated purpose is not permitted for this caller" if {
	not purposes.purpose_ok
} else := "the request is outside the client app's contract" if {
	count(clients.reasons) > 0
} else := sprintf("client app %s is not contracted to read %s", [util.app, c]) if {
	not clients.allows_coordinate(c)
} else := sprintf("tagged %s: never released through the API", [concat(", ", sort(found))]) if {
	found := tags(c) & {t | some t in pur.never_release_tags}
	count(found) > 0
} else := "anonymous callers see public data only" if {
	not util.authenticated
	extra := tags(c) - {t | some t in pur.anonymous_tags}
	count(extra) > 0
} else := sprintf("purpose %s does not cover %s data", [purposes.purpose_name, concat(", ", sort(extra))]) if {
	extra := tags(c) - purposes.purpose_tags
	count(extra) > 0
} else := sprintf("%s data needs a role this caller does not have", [concat(", ", sort(missing))]) if {
	missing := missing_role_tags(c)
	count(missing) > 0
}

# Why the answer depends on each data subject.
check_reason(c) := sprintf("purpose %s needs the data subject's consent", [purposes.purpose_name]) if {
	purposes.purpose_flag("requires_consent")
	personal(c)
} else := "the data subject's privacy settings apply" if {
	purposes.purpose_flag("honours_privacy")
	privacy_key(c)
} else := "personal data: the data subject's privacy settings apply" if {
	purposes.purpose_flag("honours_privacy")
	personal(c)
}

mask_reason(c) := sprintf("purpose %s releases %s data masked", [purposes.purpose_name, concat(", ", sort(masked))]) if {
	masked := tags(c) & purposes.purpose_mask_tags
	count(masked) > 0
}

effect(c) := {"effect": "deny", "reason": r} if {
	r := deny_reason(c)
} else := {"effect": "check", "mask": masker(c), "reason": r} if {
	r := check_reason(c)
} else := {"effect": "mask", "mask": masker(c), "reason": r} if {
	r := mask_reason(c)
} else := {"effect": "allow", "reason": sprintf("purpose %s allows %s data", [purposes.purpose_name, concat(", ", sort(tags(c)))])}

# The plan's per-field answer for every coordinate the operation touches.
decisions := {c: effect(c) | some c in util.coordinates}
