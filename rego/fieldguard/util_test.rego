package fieldguard.util_test

import rego.v1

import data.fieldguard.fixtures_test as fx
import data.fieldguard.util

test_authenticated_needs_flag_and_id if {
	util.authenticated with input as {"subject": fx.member}
	not util.authenticated with input as {"subject": fx.anonymous}
	not util.authenticated with input as {"subject": object.union(fx.member, {"id": null})}
	not util.authenticated with input as {"subject": object.union(fx.member, {"id": ""})}
	not util.authenticated with input as {}
}

test_roles_ignore_non_strings if {
	util.roles == {"support"} with input as {"subject": fx.with_roles(["support", 7, null])}
	util.roles == set() with input as {"subject": object.union(fx.member, {"roles": "support"})}
}

test_staff_needs_a_staff_role_and_sign_in if {
	util.is_staff with input as {"subject": fx.with_roles(["support"])}
	not util.is_staff with input as {"subject": fx.with_roles(["partner"])}
	not util.is_staff with input as {"subject": object.union(fx.anonymous, {"roles": ["staff"]})}
}

test_valid_ip if {
	util.valid_ip("203.0.113.9")
	util.valid_ip("2001:db8::1")
	not util.valid_ip("203.0.113")
	not util.valid_ip("300.1.1.1")
	not util.valid_ip("1:2")
	not util.valid_ip("")
	not util.valid_ip(42)
}

test_prefix_from_input_wins if {
	util.prefix == "203.0.113.0/24" with input as {"client": {"ip": "203.0.113.9", "prefix": "203.0.113.0/24"}}
}

test_prefix_derived_ipv4 if {
	util.prefix == "198.18.7.0/24" with input as {"client": {"ip": "198.18.7.200"}}
	util.prefix == "198.18.7.0/24" with input as {"client": {"ip": "198.18.7.200", "prefix": "not a cidr"}}
}

test_prefix_derived_ipv6 if {
	# Written as Python's ipaddress writes the network (the limits library
	# keys counters the same way).
	util.prefix == "2001:db8:0:12::/64" with input as {"client": {"ip": "2001:DB8:0:0012::1"}}
	util.prefix == "2001:db8::/64" with input as {"client": {"ip": "2001:0db8::12:0:0:1"}}
	util.prefix == "2001:db8:aa:bb::/64" with input as {"client": {"ip": "2001:db8:aa:bb:cc:dd:ee:ff"}}
	util.prefix == "0:0:1:2::/64" with input as {"client": {"ip": "0:0:1:2::9"}}
	util.prefix == "::/64" with input as {"client": {"ip": "::1"}}
}

test_no_prefix_without_valid_ip if {
	not util.prefix with input as {"client": {"ip": "bogus"}}
	not util.prefix with input as {"client": {}}
}

test_coordinate_type if {
	util.coordinate_type("User.email") == "User"
	not util.coordinate_type("email")
	not util.coordinate_type(".email")
	not util.coordinate_type(3)
}

test_coordinates_from_fields if {
	coords := util.coordinates with input as {"fields": [
		fx.field("User.email", []),
		fx.field("User.email", ["pii"]),
		{"tags": []},
		"User.phone",
	]}
	coords == {"User.email"}
}

test_sorted_reasons_are_stable if {
	s := {
		{"code": "quota.records_day", "message": "b"},
		{"code": "network.blocked", "message": "z"},
		{"code": "quota.records_day", "message": "a"},
	}
	[r.message | some r in util.sorted_reasons(s)] == ["z", "a", "b"]
}

test_status_per_outcome if {
	util.status == {"allow": 200, "deny": 403, "invalid": 400, "throttle": 429, "challenge": 403}
	util.error_code.challenge == "CHALLENGE_REQUIRED"
}

test_ipv4_mapped_client_ip_is_plain_ipv4 if {
	util.client_ip == "192.0.2.200" with input as {"client": {"ip": "::FFFF:192.0.2.200"}}
	util.client_ip == "2001:db8::1" with input as {"client": {"ip": "2001:db8::1"}}
	not util.mapped_ipv4("::ffff:2001:db8::1")
}
