# Purposes (policies/purposes.yaml): why the caller reads data, and whether
# this caller may claim that purpose at all (GDPR Art. 5(1)(b): purpose
# limitation).
package fieldguard.purposes

import rego.v1

# Other fieldguard packages are referred to by their full path
# (data.fieldguard.util.x), not through `import data.fieldguard.util`:
# regorus resolves an imported alias by evaluating the whole package it
# names, every rule in it, even to read one rule.

pur := data.policy.purposes

# The purpose the caller stated; null or absent means the default purpose.
stated_purpose := object.get(input, "purpose", null)

purpose_name := pur.default_purpose if stated_purpose == null

purpose_name := stated_purpose if is_string(stated_purpose)

purpose := pur.purposes[purpose_name]

# The purpose for messages: its name, or what was stated when that is no name.
purpose_label := n if {
	n := purpose_name
} else := stated_purpose

purpose_flag(name) if purpose[name] == true

purpose_tags := {t | some t in data.fieldguard.util.array_or_empty(object.get(purpose, "tags", []))}

purpose_mask_tags := {t | some t in data.fieldguard.util.array_or_empty(object.get(purpose, "mask", []))}

# Why the stated purpose cannot be used by this caller. Each is a reason for
# the plan to deny: claiming a purpose you are not entitled to is misuse, not
# a per-field question. A purpose without a `roles` list is open to every
# signed-in caller; an empty list admits nobody.
purpose_problems contains {
	"code": "purpose.unknown",
	"message": sprintf("purpose %v is not defined; the request states why data is read and only listed purposes are allowed", [stated_purpose]),
} if not purpose

purpose_problems contains {
	"code": "purpose.anonymous",
	"message": sprintf("purpose %s requires a signed-in caller", [purpose_name]),
} if {
	purpose
	not data.fieldguard.util.authenticated
	not purpose_flag("anonymous")
}

purpose_problems contains {
	"code": "purpose.role",
	"message": sprintf("purpose %s requires one of the roles %s", [purpose_name, concat(", ", sort(needed))]),
} if {
	data.fieldguard.util.authenticated
	listed := purpose.roles
	needed := {r | some r in data.fieldguard.util.array_or_empty(listed)}
	count(needed & data.fieldguard.util.roles) == 0
}

purpose_ok if count(purpose_problems) == 0
