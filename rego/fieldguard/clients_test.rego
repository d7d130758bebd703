package fieldguard.clients_test

import rego.v1

import data.fieldguard.clients
import data.fieldguard.fixtures_test as fx

request(app, purpose, coordinates) := fx.plan_with({
	"client": object.union(fx.client, {"app": app}),
	"purpose": purpose,
	"fields": [fx.field(c, []) | some c in coordinates],
})

codes(inp) := found if {
	found := {r.code | some r in clients.reasons} with input as inp
}

test_no_app_no_contract_applies if {
	codes(request(null, null, ["User.email", "User.phone"])) == set()
	clients.allows_coordinate("User.phone") with input as request(null, null, [])
}

test_unknown_app_denied if {
	codes(request("harvester", null, ["User.handle"])) == {"client.unknown"}
}

test_malformed_app_denied if {
	codes(request(42, null, ["User.handle"])) == {"client.malformed"}
	codes(request("", null, ["User.handle"])) == {"client.malformed"}
}

test_revoked_app_denied if {
	codes(request("legacy-scraper-co", null, ["User.handle"])) == {"client.revoked"}
}

test_app_purpose_outside_contract_denied if {
	codes(request("partner-x", "analytics", ["User.handle"])) == {"client.purpose"}
	codes(request("research-lab", null, ["User.handle"])) == {"client.purpose"}
}

test_app_coordinates_outside_contract_denied if {
	reasons := clients.reasons with input as request("partner-x", null, ["User.handle", "User.phone", "User.location"])
	[r.message | some r in reasons] == ["client app partner-x is not contracted to read User.location, User.phone"]
}

test_app_within_contract if {
	codes(request("partner-x", null, ["User.handle", "User.email", "Post.body"])) == set()
	codes(request("research-lab", "analytics", ["User.birthday", "Post.location"])) == set()
	codes(request("web", "support", ["User.moderationNotes"])) == set()
}

test_coordinate_patterns if {
	clients.matches("*", "User.email")
	clients.matches("Post.*", "Post.body")
	not clients.matches("Post.*", "PostDraft.body")
	clients.matches("User.email", "User.email")
	not clients.matches("User.email", "User.emailVerified")
}
