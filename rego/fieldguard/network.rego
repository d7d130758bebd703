# Network deny list (policies/network.yaml): requests from ranges known for
# scraping are refused before any data is read. The message stays generic
# (clients see it); the matched range and its reason go to the audit record in
# `rule`.
package fieldguard.network

import rego.v1

# Other fieldguard packages are referred to by their full path
# (data.fieldguard.util.x), not through `import data.fieldguard.util`:
# regorus resolves an imported alias by evaluating the whole package it
# names, every rule in it, even to read one rule.

deny_list := data.fieldguard.util.array_or_empty(object.get(data.policy, ["network", "deny"], []))

reasons contains {
	"code": "network.blocked",
	"message": "requests from this network are blocked",
	"rule": sprintf("%s: %s", [entry.cidr, object.get(entry, "reason", "")]),
} if {
	ip := data.fieldguard.util.valid_client_ip
	some entry in deny_list
	net.cidr_contains(entry.cidr, ip)
}

# An address that does not parse cannot be checked against the deny list:
# refuse (fail closed) rather than skip the check.
reasons contains {
	"code": "network.malformed_ip",
	"message": "the client address is not a valid IP address",
} if {
	data.fieldguard.util.client_ip != null
	not data.fieldguard.util.valid_client_ip
}

# Anonymous callers are counted by address; without one no quota could apply
# to them, so an integration that forgets the address refuses them.
reasons contains {
	"code": "network.unidentified",
	"message": "anonymous requests need a client address",
} if {
	not data.fieldguard.util.authenticated
	not data.fieldguard.util.client_ip
}
