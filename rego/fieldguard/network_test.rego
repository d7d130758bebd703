package fieldguard.network_test

import rego.v1

import data.fieldguard.fixtures_test as fx
import data.fieldguard.network

codes(subject, client) := found if {
	found := {r.code | some r in network.reasons} with input as {"subject": subject, "client": client}
}

test_listed_ipv4_range_blocked if {
	codes(fx.member, {"ip": "198.51.100.23"}) == {"network.blocked"}
	codes(fx.anonymous, {"ip": "192.0.2.200"}) == {"network.blocked"}
}

test_listed_ipv6_range_blocked if {
	codes(fx.member, {"ip": "2001:db8:bad::7"}) == {"network.blocked"}
	codes(fx.member, {"ip": "2001:db8:beef::7"}) == set()
}

test_neighbouring_addresses_not_blocked if {
	codes(fx.member, {"ip": "198.51.101.1"}) == set()
	codes(fx.member, {"ip": "192.0.2.127"}) == set()
}

test_blocked_reason_keeps_rule_for_audit if {
	some r in network.reasons with input as {"subject": fx.member, "client": {"ip": "198.51.100.23"}}
	r.message == "requests from this network are blocked"
	startswith(r.rule, "198.51.100.0/24: ")
}

test_malformed_address_refused if {
	codes(fx.member, {"ip": "not-an-ip"}) == {"network.malformed_ip"}
	codes(fx.member, {"ip": 12345}) == {"network.malformed_ip"}
}

test_anonymous_without_address_refused if {
	codes(fx.anonymous, {"ip": null}) == {"network.unidentified"}
	codes(fx.anonymous, {}) == {"network.unidentified"}
	codes(fx.member, {}) == set()
}
