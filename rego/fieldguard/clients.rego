# Client app contracts (policies/clients.yaml): which apps may call, for which
# purposes, and which coordinates they may read. A request outside its
# contract is denied as a whole: partial answers would hide the breach from
# the partner and from the audit.
package fieldguard.clients

import rego.v1

# Other fieldguard packages are referred to by their full path
# (data.fieldguard.util.x), not through `import data.fieldguard.util`:
# regorus resolves an imported alias by evaluating the whole package it
# names, every rule in it, even to read one rule.

apps := object.get(data.policy, ["clients", "apps"], {})

contract := apps[data.fieldguard.util.app]

# The coordinates the caller may read: all of them when no app is named
# (direct/first-party call without an app id), else what the contract lists
# (nothing for an app without a contract).
allowed_patterns := ["*"] if not data.fieldguard.util.app

allowed_patterns := data.fieldguard.util.array_or_empty(object.get(contract, "coordinates", [])) if data.fieldguard.util.app

# (One body over a rule rather than a `not util.app` clause in the function:
# regorus 0.13 answered a function of that shape wrongly once `contract` had
# been evaluated earlier in the same query.)
#
# The patterns are sorted once per request into "everything", exact names and
# `Type.` prefixes, so a coordinate is checked with a few lookups rather than
# by trying every pattern (this runs for every coordinate of the request).
allows_coordinate(_) if allows_everything

allows_coordinate(c) if c in allowed_patterns

allows_coordinate(c) if {
	some prefix in allowed_prefixes
	startswith(c, prefix)
}

allows_everything if "*" in allowed_patterns

# "Post.*" -> "Post."
allowed_prefixes := {trim_suffix(pattern, "*") |
	some pattern in allowed_patterns
	is_string(pattern)
	endswith(pattern, ".*")
}

# The rule the three definitions above implement, pattern by pattern.

matches("*", _) := true

matches(pattern, c) if pattern == c

matches(pattern, c) if {
	endswith(pattern, ".*")
	startswith(c, trim_suffix(pattern, "*"))
}

reasons contains {
	"code": "client.malformed",
	"message": "client app must be a non-empty string or null",
} if data.fieldguard.util.app_malformed

reasons contains {
	"code": "client.unknown",
	"message": sprintf("client app %s has no contract", [data.fieldguard.util.app]),
} if {
	data.fieldguard.util.app
	not contract
}

reasons contains {
	"code": "client.revoked",
	"message": sprintf("the contract of client app %s has been revoked", [data.fieldguard.util.app]),
} if contract.revoked == true

reasons contains {
	"code": "client.purpose",
	"message": sprintf("client app %s is not contracted for purpose %v", [data.fieldguard.util.app, data.fieldguard.purposes.purpose_label]),
} if {
	contract
	not object.get(contract, "revoked", false) == true
	not purpose_allowed
}

purpose_allowed if data.fieldguard.purposes.purpose_name in data.fieldguard.util.array_or_empty(object.get(contract, "purposes", []))

reasons contains {
	"code": "client.coordinate",
	"message": sprintf("client app %s is not contracted to read %s", [data.fieldguard.util.app, concat(", ", sort(outside))]),
} if {
	contract
	not object.get(contract, "revoked", false) == true
	outside := {c | some c in data.fieldguard.util.coordinates; not allows_coordinate(c)}
	count(outside) > 0
}
