# Shared inputs for the tests (no test_ rules here). Inputs follow
# docs/policy-contract.md; tests change one thing at a time with
# object.union so each test says what it is about.
package fieldguard.fixtures_test

import rego.v1

member := {
	"id": "u7",
	"authenticated": true,
	"roles": [],
	"scopes": [],
	"tier": null,
	"verified": false,
	"account_age_days": 400,
}

anonymous := {
	"id": null,
	"authenticated": false,
	"roles": [],
	"scopes": [],
	"tier": null,
	"verified": false,
	"account_age_days": null,
}

with_roles(roles) := object.union(member, {"roles": roles})

client := {"ip": "203.0.113.9", "prefix": "203.0.113.0/24", "app": null, "user_agent": "fieldguard-tests"}

small_query := {
	"protocol": "graphql",
	"type": "query",
	"name": "Users",
	"complexity": {"depth": 3, "aliases": 1, "fields": 6, "cost": 20, "max_list": 10},
}

# One field entry the way the GraphQL plugin reports it.
field(coordinate, tags) := {"coordinate": coordinate, "tags": tags, "count": 1}

profile_fields := [
	field("User.handle", []),
	field("User.email", ["pii", "contact"]),
	field("User.phone", ["pii", "contact"]),
	field("User.birthday", ["pii"]),
	field("User.location", ["pii", "location"]),
]

plan_input := {
	"subject": member,
	"client": client,
	"purpose": null,
	"operation": small_query,
	"fields": profile_fields,
	"usage": {"subject": {}, "app": {}, "ip": {}, "prefix": {}},
	"signals": {"enumeration_score": 0, "distinct_subjects_day": 0},
}

# plan_input with some top-level keys replaced.
plan_with(changes) := object.union(plan_input, changes)

# A User object as the integration sends it to the objects decision.
user(relation, attrs) := {"type": "User", "relation": relation, "attrs": attrs}

public_attrs := {"privacy": {}, "visibility": "public", "consent": []}

objects_input(subject, purpose, coordinates, objs) := {
	"subject": subject,
	"client": client,
	"purpose": purpose,
	"operation": small_query,
	"signals": {"enumeration_score": 0, "distinct_subjects_day": 0},
	"coordinates": coordinates,
	"objects": objs,
}
