# Shared helpers: who is calling (from input.subject / input.client), address
# handling, and deterministic ordering of reasons.
#
# Everything here guards types before calling builtins: regorus raises on a
# builtin type error where OPA returns undefined, and both engines must give
# the same answer for the same (even malformed) input.
package fieldguard.util

import rego.v1

# ---------------------------------------------------------------- the caller

# Authenticated means the integration said so AND named the subject: an
# "authenticated" caller without an id is treated as anonymous (fail closed).
authenticated if {
	input.subject.authenticated == true
	is_string(input.subject.id)
	input.subject.id != ""
}

subject_id := input.subject.id if authenticated

# The caller's roles as a set of strings (anything else is ignored).
roles := {r | some r in array_or_empty(object.get(input, ["subject", "roles"], [])); is_string(r)}

# Platform staff (purposes.yaml staff_roles) may see private and suspended
# objects.
is_staff if {
	authenticated
	some r in roles
	r in data.policy.purposes.staff_roles
}

# The client app, when the request names one.
app := a if {
	a := input.client.app
	is_string(a)
	a != ""
}

# True when input.client.app is present but not a usable name.
app_malformed if {
	a := object.get(input, ["client", "app"], null)
	a != null
	not is_string(a)
}

app_malformed if input.client.app == ""

# ---------------------------------------------------------------- addresses

# The client IP when present (null/absent means the integration has none,
# e.g. an in-process call). A dual-stack server reports IPv4 clients as
# ::ffff:a.b.c.d; they are treated as the IPv4 address they are, because deny
# lists, prefixes and quotas are written for IPv4, and regorus's
# net.cidr_contains (unlike OPA's) does not match mapped addresses against
# IPv4 ranges: without this the deny list would fail open on the default engine.
client_ip := v4 if {
	ip := object.get(input, ["client", "ip"], null)
	v4 := mapped_ipv4(ip)
} else := ip if {
	ip := object.get(input, ["client", "ip"], null)
	ip != null
}

# The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d).
mapped_ipv4(ip) := v4 if {
	is_string(ip)
	startswith(lower(ip), "::ffff:")
	v4 := substring(ip, 7, -1)
	not contains(v4, ":")
	net.cidr_is_valid(concat("", [v4, "/32"]))
}

valid_ip(ip) if {
	is_string(ip)
	not contains(ip, ":")
	net.cidr_is_valid(concat("", [ip, "/32"]))
}

valid_ip(ip) if {
	is_string(ip)
	contains(ip, ":")
	net.cidr_is_valid(concat("", [ip, "/128"]))
}

# The client IP when it is a valid address (checked once per request: the
# prefix, the deny list and the `ip` quota scope all need to know).
valid_client_ip := ip if {
	ip := client_ip
	valid_ip(ip)
}

# The network prefix the IP belongs to (IPv4 /24, IPv6 /64): the key of the
# `prefix` quota scope. The integration's input.client.prefix wins when it is
# a valid CIDR; otherwise it is derived from the IP.
prefix := p if {
	p := input.client.prefix
	is_string(p)
	net.cidr_is_valid(p)
} else := p if {
	ip := valid_client_ip
	not contains(ip, ":")
	parts := split(ip, ".")
	p := sprintf("%s.%s.%s.0/24", [parts[0], parts[1], parts[2]])
} else := p if {
	ip := valid_client_ip
	contains(ip, ":")
	p := ipv6_prefix64(ip)
}

# The /64 network of an IPv6 address, written the way Python's ipaddress
# writes it (RFC 5952: lower case, no leading zeros, the zero run compressed)
# so that the policy and the limits library name the same counter.
ipv6_prefix64(ip) := p if {
	first := array.slice(ipv6_groups(ip), 0, 4)
	count(first) == 4
	kept := max({n | some i, g in first; g != "0"; n := i + 1} | {0})
	p := sprintf("%s::/64", [concat(":", array.slice(first, 0, kept))])
}

# The eight groups of an IPv6 address, "::" expanded, leading zeros stripped.
ipv6_groups(ip) := full if {
	halves := split(lower(ip), "::")
	count(halves) == 2
	head := groups(halves[0])
	tail := groups(halves[1])
	missing := 8 - count(head) - count(tail)
	fill := ["0" | some i in numbers.range(1, 8); i <= missing]
	full := array.concat(array.concat(head, fill), tail)
} else := groups(lower(ip))

groups("") := []

groups(s) := [strip_zeros(g) | some g in split(s, ":")] if s != ""

strip_zeros(g) := "0" if trim_left(g, "0") == ""

strip_zeros(g) := trim_left(g, "0") if trim_left(g, "0") != ""

# ---------------------------------------------------------------- coordinates

# "User.email" -> "User"
coordinate_type(c) := substring(c, 0, i) if {
	is_string(c)
	i := indexof(c, ".")
	i > 0
}

# Every coordinate the operation touches (from input.fields).
coordinates := {c |
	some f in array_or_empty(object.get(input, "fields", []))
	is_object(f)
	c := f.coordinate
	is_string(c)
}

# ---------------------------------------------------------------- small things

array_or_empty(x) := x if is_array(x)

array_or_empty(x) := [] if not is_array(x)

# A set of reasons ({code, message, ...}) as a list ordered by code, then
# message: both engines return the same order, and audit diffs stay stable.
sorted_reasons(s) := [r |
	some k in sort({reason_key(x) | some x in s})
	some r in s
	reason_key(r) == k
]

reason_key(r) := concat("\u0000", [r.code, r.message])

# HTTP status per outcome (docs/policy-contract.md).
status := {"allow": 200, "deny": 403, "invalid": 400, "throttle": 429, "challenge": 403}

# Machine-readable error code per outcome, for GraphQL extensions.code.
error_code := {
	"allow": "OK",
	"deny": "FORBIDDEN",
	"invalid": "QUERY_TOO_COMPLEX",
	"throttle": "RATE_LIMITED",
	"challenge": "CHALLENGE_REQUIRED",
}
