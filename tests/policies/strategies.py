"""Hypothesis strategies for contract-shaped ``fieldguard.plan`` / ``objects`` inputs.

The inputs follow ``docs/policy-contract.md`` the way an integration builds
them (``fieldguard.context.Caller.as_input``, ``Usage.as_input``, the guard's
object shapes): well-formed JSON, never junk (malformed inputs are covered by
``tests/rego/test_shipped_rego.py``). Every example must therefore be
decided by the policy.

The values come from the shipped policy data (``policies/*.yaml``), so a new
role, tier, app, CIDR, quota or cap is exercised without editing this file.
Numbers cluster around every threshold the policy compares them with
(``t - 1``, ``t``, ``t + 1``) so both sides of each comparison are reached.
The mix is weighted like traffic rather than uniformly: most requests are
ordinary (known app, a purpose the caller may state, usage under quota), so
the per-field and per-object rules behind an allowed request get as many
examples as the refusals in front of them.

Strategies are built once at import: hypothesis validates a strategy on
first use, and rebuilding them inside composites makes generation slower
than the two policy evaluations per example.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from hypothesis import strategies as st

from fieldguard.context import ip_prefix

T = TypeVar("T")

POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"


def _load(name: str) -> Any:
    return yaml.safe_load((POLICY_DIR / f"{name}.yaml").read_text(encoding="utf-8"))


CLASSIFICATION = _load("classification")
CLIENTS = _load("clients")
LIMITS = _load("limits")
NETWORK = _load("network")
PURPOSES = _load("purposes")


def weighted(*choices: tuple[int, st.SearchStrategy[T]]) -> st.SearchStrategy[T]:
    """``one_of`` with integer weights. (``one_of`` picks its branches about
    evenly and drops repeated ones; ``sampled_from`` keeps repeats.)"""
    index = st.sampled_from([i for i, (w, _) in enumerate(choices) for _ in range(w)])
    branches = [s for _, s in choices]

    @st.composite
    def pick(draw: st.DrawFn) -> T:
        return draw(branches[draw(index)])

    return pick()


#: What a generated request pushes against. Most requests push against
#: nothing (so the rules behind an allowed request are reached); the others
#: put one dimension (or, with "all", every one) around its thresholds.
STRESS = ["none", "none", "none", "caps", "usage", "signals", "network", "caller", "all"]
stresses = st.sampled_from(STRESS)


def stressed(stress: str, dimension: str) -> bool:
    return stress in (dimension, "all")


# ---------------------------------------------------------------- vocabulary

#: Coordinates compliance classified, plus some it never heard of (these take
#: the code-side tags, else ``default_tags``).
KNOWN_COORDINATES: list[str] = sorted(CLASSIFICATION["coordinates"])
UNKNOWN_COORDINATES = [
    "User.nickname", "User.pronouns", "User.homeAddress", "Post.title", "Post.likeCount",
    "Comment.body", "Comment.authorEmail", "Order.address", "Query.users", "Query.user",
    "Mutation.updateProfile",
]
ALL_COORDINATES = KNOWN_COORDINATES + UNKNOWN_COORDINATES

#: Every tag the shipped data mentions, and one it does not.
TAGS: list[str] = [*sorted(
    {t for entry in CLASSIFICATION["coordinates"].values() for t in entry.get("tags", [])}
    | set(CLASSIFICATION["default_tags"])
    | set(PURPOSES["personal_tags"])
    | set(PURPOSES["role_gated_tags"])
    | set(PURPOSES["never_release_tags"])
    | {t for p in PURPOSES["purposes"].values() for t in p.get("tags", [])}
), "financial"]

ROLES: list[str] = [*sorted(
    set(PURPOSES["staff_roles"])
    | {r for roles in PURPOSES["role_gated_tags"].values() for r in roles}
    | {r for p in PURPOSES["purposes"].values() for r in p.get("roles", [])}
), "partner", "admin"]

PURPOSE_NAMES: list[str] = sorted(PURPOSES["purposes"])
UNKNOWN_PURPOSES = ["marketing", "Support", "ads-targeting"]

APPS: list[str] = sorted(CLIENTS["apps"])
UNKNOWN_APPS = ["harvester", "partner-y", "WEB"]

TIERS: list[str] = sorted(LIMITS["tiers"])
UNKNOWN_TIERS = ["platinum", "Partner"]

QUOTAS: list[str] = sorted(LIMITS["quotas"])
SCOPES: list[str] = list(LIMITS["scopes"])

OBJECT_TYPES: list[str] = sorted(CLASSIFICATION["types"])
PRIVACY_KEYS: list[str] = [*sorted(
    set(CLASSIFICATION["privacy_defaults"])
    | {e["privacy"] for e in CLASSIFICATION["coordinates"].values() if "privacy" in e}
), "contact_list"]
PRIVACY_VALUES = ["everyone", "authenticated", "nobody"]
VISIBILITIES: list[str] = [*sorted(CLASSIFICATION["visibility"]), "unlisted", "Public"]

# ---------------------------------------------------------------- numbers


def around(*thresholds: float) -> list[int]:
    """Integers on both sides of each threshold (never negative)."""
    out = {0, 1}
    for t in thresholds:
        out |= {max(0, int(t) - 1), int(t), int(t) + 1}
    return sorted(out)


def numbers_near(thresholds: Sequence[int], spread: int) -> st.SearchStrategy[int]:
    """Right at one of the thresholds, or anywhere up to ``spread``."""
    return weighted((2, st.sampled_from(around(*thresholds))),
                    (1, st.integers(min_value=0, max_value=spread)))


def numbers_below(thresholds: Sequence[int], spread: int) -> st.SearchStrategy[int]:
    """Ordinary traffic: well below the smallest threshold."""
    return st.integers(min_value=0, max_value=max(1, min(thresholds, default=spread) // 2))


# Caps by complexity key: the global cap and every tier's override of it.
_CAP_FOR = {"depth": "max_depth", "aliases": "max_aliases", "max_list": "max_page_size",
            "cost": "max_cost"}


def _cap_values(cap: str) -> list[int]:
    values = [LIMITS["caps"][cap]] if cap in LIMITS["caps"] else []
    values += [t["caps"][cap] for t in LIMITS["tiers"].values() if cap in t.get("caps", {})]
    return values


COMPLEXITY_KEYS = ["depth", "aliases", "fields", "cost", "max_list"]
_COMPLEXITY_CAPS = {k: _cap_values(_CAP_FOR[k]) if k in _CAP_FOR else [] for k in COMPLEXITY_KEYS}
COMPLEXITY_NEAR = {k: numbers_near(caps, spread=3 * max(caps, default=200))
                   for k, caps in _COMPLEXITY_CAPS.items()}
COMPLEXITY_LOW = {k: numbers_below(caps, spread=200) for k, caps in _COMPLEXITY_CAPS.items()}


def _quota_limits(quota: str) -> list[int]:
    """Every limit any scope can have for ``quota``: tiers, network, app contracts."""
    values = [t["quotas"][quota] for t in LIMITS["tiers"].values() if quota in t["quotas"]]
    values += [n[quota] for n in LIMITS["network_quotas"].values() if quota in n]
    values += [a.get("quotas", {})[quota] for a in CLIENTS["apps"].values()
               if quota in a.get("quotas", {})]
    return values


QUOTA_LIMITS = {q: _quota_limits(q) for q in QUOTAS}
USAGE_NEAR = {q: numbers_near(QUOTA_LIMITS[q], spread=2 * max(QUOTA_LIMITS[q], default=500))
              for q in QUOTAS}
USAGE_LOW = {q: numbers_below(QUOTA_LIMITS[q], spread=100) for q in QUOTAS}

# ---------------------------------------------------------------- subjects

subject_ids = st.one_of(st.sampled_from(["u7", "u8", "u1024"]),
                        st.integers(1, 10 ** 7).map(lambda n: f"u{n}"))

account_ages = weighted(
    (1, st.none()),  # unknown age counts as a new account
    (4, numbers_near([LIMITS["new_account_days"]], spread=4000)),
    (2, st.integers(min_value=LIMITS["new_account_days"], max_value=4000)),
)

tier_overrides = weighted((4, st.none()), (2, st.sampled_from(TIERS)),
                          (1, st.sampled_from(UNKNOWN_TIERS)))

other_roles = st.lists(st.sampled_from(ROLES), max_size=3, unique=True)
user_scopes = st.lists(st.sampled_from(["read:users", "read:posts", "write"]), max_size=2,
                       unique=True)


@st.composite
def authenticated_subject(draw: st.DrawFn, purpose: str | None) -> dict[str, Any]:
    roles = draw(other_roles)
    needed = PURPOSES["purposes"].get(purpose or "", {}).get("roles")
    # Most callers who state a role-gated purpose hold one of its roles.
    if needed and draw(st.integers(0, 4)):
        role = draw(st.sampled_from(needed))
        roles = roles if role in roles else [*roles, role]
    return {
        "id": draw(subject_ids),
        "authenticated": True,
        "roles": roles,
        "scopes": draw(user_scopes),
        "tier": draw(tier_overrides),
        "verified": draw(st.booleans()),
        "account_age_days": draw(account_ages),
    }


@st.composite
def anonymous_subject(draw: st.DrawFn) -> dict[str, Any]:
    # Subject.anonymous().as_input(); an identity layer may still attach a
    # tier hint, which the policy must ignore for anonymous callers.
    return {"id": None, "authenticated": False, "roles": [], "scopes": [],
            "tier": draw(weighted((4, st.none()), (1, st.sampled_from(TIERS)))),
            "verified": False, "account_age_days": None}


# ---------------------------------------------------------------- clients


def _edges(cidr: str) -> list[str]:
    """Addresses at the edges of ``cidr``: first, last, and just outside."""
    net = ipaddress.ip_network(cidr)
    first, last = net.network_address, net.broadcast_address
    out = [first, first + 1, last - 1, last]
    if int(first) > 0:
        out.append(first - 1)
    if int(last) < 2 ** net.max_prefixlen - 1:
        out.append(last + 1)
    return [str(a) for a in out]


DENY_CIDRS: list[str] = [entry["cidr"] for entry in NETWORK["deny"]]
EDGE_IPS = sorted({ip for cidr in DENY_CIDRS for ip in _edges(cidr)})


def _address_in(cidr: str) -> st.SearchStrategy[str]:
    net = ipaddress.ip_network(cidr)
    offsets = st.integers(0, net.num_addresses - 1)
    if net.version == 6:
        offsets = st.one_of(st.integers(0, 2 ** 16), offsets)
    return offsets.map(lambda n: str(net.network_address + n))


def respell_ipv6(addr: str, style: int) -> str:
    """Other spellings of one IPv6 address that Python's ``ipaddress`` (and so
    an integration) accepts."""
    ip = ipaddress.IPv6Address(addr)
    if style == 1:
        return ip.exploded  # 2001:0db8:0bad:0000:…
    if style == 2:
        return ip.compressed.upper()
    if style == 3:  # all eight groups, without leading zeros
        return ":".join(f"{int(g, 16):x}" for g in ip.exploded.split(":"))
    return ip.compressed


denied_ips = st.one_of(*(_address_in(c) for c in DENY_CIDRS))
ipv4_addresses = weighted(
    (1, st.sampled_from(["203.0.113.9", "203.0.113.200", "10.0.0.1", "192.0.2.1",
                         "0.0.0.0", "255.255.255.255", "127.0.0.1"])),
    (3, st.integers(0, 2 ** 32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))),
)
_ipv6_raw = st.one_of(
    st.sampled_from(["::1", "::", "2001:db8::1", "2001:db8:1:2:3:4:5:6", "fe80::1",
                     "2001:db8:bac:ffff::1", "2001:db8:bae::1", "2001:db8:0:12::1",
                     "0:0:1:2::9"]),
    st.integers(0, 2 ** 128 - 1).map(lambda n: str(ipaddress.IPv6Address(n))),
)
ipv6_addresses = st.builds(respell_ipv6, _ipv6_raw, st.integers(0, 3))
denied_ipv6 = st.builds(respell_ipv6, st.one_of(*(_address_in(c) for c in DENY_CIDRS
                                                 if ":" in c)), st.integers(0, 3))

# What a dual-stack (IPv6) listening socket reports for an IPv4 peer, e.g.
# asyncio/uvicorn bound to "::": the IPv4-mapped IPv6 address.
ipv4_mapped = st.one_of(ipv4_addresses, st.sampled_from(EDGE_IPS), denied_ips).map(
    lambda ip: f"::ffff:{ip}" if "." in ip else ip)

#: Addresses of ordinary traffic (some of them near, none inside a deny range).
ordinary_ips = weighted((6, ipv4_addresses), (3, ipv6_addresses))
#: Addresses that test the deny list: inside it, at its edges, or an IPv4
#: peer (inside or not) seen through a dual-stack socket.
#: No address (an in-process call: null) and link-local addresses with a
#: zone id, which Python's ipaddress accepts and the policy cannot check.
network_ips = weighted((2, st.sampled_from(EDGE_IPS)), (2, denied_ips), (1, denied_ipv6),
                       (2, ipv4_mapped), (1, ordinary_ips), (3, st.none()),
                       (1, st.sampled_from(["fe80::1%eth0", "fe80::a00:27ff:fe4e:66a1%2"])))

contracted_apps = st.sampled_from([a for a in APPS if not CLIENTS["apps"][a].get("revoked")])
ordinary_apps = weighted((2, st.none()), (3, contracted_apps))
revoked_apps = st.sampled_from([a for a in APPS if CLIENTS["apps"][a].get("revoked")] or APPS)
any_app = weighted((2, st.none()), (3, contracted_apps), (1, revoked_apps),
                   (1, st.sampled_from(UNKNOWN_APPS)))
user_agents = st.sampled_from(["Mozilla/5.0", "partner-x/2.1", "python-requests/2.32",
                               "curl/8.5.0", ""])


@st.composite
def client(draw: st.DrawFn, app: str | None, stress: str) -> dict[str, Any]:
    ip: str | None = draw(network_ips if stressed(stress, "network") else ordinary_ips)
    doc: dict[str, Any] = {"ip": ip}
    # Client.as_input() always sends the prefix; hand-built integrations may
    # leave it out or null and let the policy derive it.
    how = draw(st.sampled_from(["given", "given", "given", "absent", "null"]))
    if how == "given" and ip is not None:
        doc["prefix"] = ip_prefix(ip)
    elif how != "absent":
        doc["prefix"] = None
    doc["app"] = app
    doc["user_agent"] = draw(user_agents)
    return doc


# ---------------------------------------------------------------- purposes


def _app_purposes(app: str | None) -> list[str | None]:
    """Purposes a caller of ``app`` would state (the default one as null)."""
    if app is None or app not in CLIENTS["apps"]:
        return [None, *PURPOSE_NAMES]
    stated = CLIENTS["apps"][app].get("purposes") or [PURPOSES["default_purpose"]]
    return [None if p == PURPOSES["default_purpose"] else p for p in stated]


APP_PURPOSES = {app: st.sampled_from(_app_purposes(app)) for app in [None, *APPS]}
any_purpose = weighted((2, st.none()), (4, st.sampled_from(PURPOSE_NAMES)),
                       (1, st.sampled_from(UNKNOWN_PURPOSES)))

# ---------------------------------------------------------------- operation

graphql_names = st.sampled_from([None, "Users", "Profile", "Feed", "UpdateProfile", "OnPost"])
rest_names = st.sampled_from(["GET /users", "GET /users/{id}", "POST /posts",
                              "PATCH /users/{id}"])


@st.composite
def operation(draw: st.DrawFn, stress: str) -> dict[str, Any]:
    values = COMPLEXITY_NEAR if stressed(stress, "caps") else COMPLEXITY_LOW
    protocol = draw(st.sampled_from(["graphql", "graphql", "rest"]))
    complexity: dict[str, int] = {}
    for key in COMPLEXITY_KEYS:
        # GraphQL integrations measure everything; REST routes often only
        # know some measures (an absent measure counts as 0).
        if protocol == "graphql" or draw(st.booleans()):
            complexity[key] = draw(values[key])
    if protocol == "graphql":
        kind = draw(st.sampled_from(["query", "query", "mutation", "subscription"]))
        name = draw(graphql_names)
    else:
        kind = draw(st.sampled_from(["query", "mutation"]))
        name = draw(rest_names)
    return {"protocol": protocol, "type": kind, "name": name, "complexity": complexity}


# ---------------------------------------------------------------- fields


def _allowed_by(app: str | None) -> list[str]:
    """Coordinates the app's contract covers (all of them without an app)."""
    patterns = CLIENTS["apps"].get(app or "", {}).get("coordinates", ["*"])

    def ok(c: str) -> bool:
        return any(p == "*" or p == c or (p.endswith(".*") and c.startswith(p[:-1]))
                   for p in patterns)

    return [c for c in ALL_COORDINATES if ok(c)] or ALL_COORDINATES


def _code_tags(coordinate: str) -> st.SearchStrategy[list[str]]:
    known = CLASSIFICATION["coordinates"].get(coordinate, {}).get("tags", [])
    # None, what compliance also says, or anything (compliance data replaces
    # code tags for classified coordinates).
    return st.one_of(st.just([]), st.just(list(known)),
                     st.lists(st.sampled_from(TAGS), max_size=3, unique=True))


CODE_TAGS = {c: _code_tags(c) for c in ALL_COORDINATES}
CONTRACT_COORDINATES = {app: st.sampled_from(_allowed_by(app)) for app in [None, *APPS]}
any_coordinate = st.sampled_from(ALL_COORDINATES)


@st.composite
def field_entry(draw: st.DrawFn, app: str | None) -> dict[str, Any]:
    # Mostly what the app's contract covers, sometimes anything.
    coordinate = draw(weighted((5, CONTRACT_COORDINATES.get(app, any_coordinate)),
                               (1, any_coordinate)))
    return {"coordinate": coordinate, "tags": draw(CODE_TAGS[coordinate]),
            "count": draw(st.integers(min_value=1, max_value=500))}


# ---------------------------------------------------------------- usage and signals

quota_subsets = st.lists(st.sampled_from(QUOTAS), max_size=len(QUOTAS), unique=True)


@st.composite
def usage(draw: st.DrawFn, subject: dict[str, Any], app: str | None,
          stress: str) -> dict[str, Any]:
    """``Usage.as_input()["usage"]``: every scope present; a scope without a
    key (no subject, no app) is empty; unused quotas are absent."""
    values = USAGE_NEAR if stressed(stress, "usage") else USAGE_LOW
    keyed = {"subject": subject["authenticated"], "app": app is not None}
    doc: dict[str, dict[str, int]] = {}
    for scope in SCOPES:
        doc[scope] = {}
        if keyed.get(scope, True):
            for quota in draw(quota_subsets):
                doc[scope][quota] = draw(values[quota])
    return doc


_SCORE = float(LIMITS["enumeration"]["challenge_score"])
_BREADTH = int(LIMITS["enumeration"]["distinct_subjects_day"])
scores_near = weighted(
    (2, st.sampled_from([0.0, 1.0, _SCORE, _SCORE - 0.01, _SCORE + 0.01, _SCORE - 1e-9,
                         _SCORE + 1e-9])),
    (1, st.floats(min_value=0.0, max_value=1.0, allow_nan=False)),
)
scores_low = st.floats(min_value=0.0, max_value=_SCORE * 0.9, allow_nan=False)
breadths_near = numbers_near([_BREADTH], spread=3 * _BREADTH)
breadths_low = numbers_below([_BREADTH], spread=_BREADTH)


@st.composite
def signals(draw: st.DrawFn, stress: str) -> dict[str, Any]:
    near = stressed(stress, "signals")
    doc: dict[str, Any] = {
        "enumeration_score": draw(scores_near if near else scores_low),
        "distinct_subjects_day": draw(breadths_near if near else breadths_low),
    }
    # Other signals the limiter reports; the shipped policy ignores them.
    if draw(st.booleans()):
        doc.update(records_day=draw(st.integers(0, 20000)),
                   request_rate_minute=draw(st.integers(0, 1000)), degraded=False)
    return doc


# ---------------------------------------------------------------- plan input


@st.composite
def caller(draw: st.DrawFn, stress: str) -> dict[str, Any]:
    """``Caller.as_input()`` plus the operation: what plan and objects share.

    Ordinary callers use a contracted app (or none) and state a purpose that
    app may state; under "caller" stress any app (revoked, unknown) and any
    purpose (unknown, not contracted) is stated.
    """
    if stressed(stress, "caller"):
        app = draw(any_app)
        purpose = draw(weighted((1, APP_PURPOSES.get(app, any_purpose)), (2, any_purpose)))
    else:
        app = draw(ordinary_apps)
        purpose = draw(APP_PURPOSES[app])
    subject = draw(weighted((3, authenticated_subject(purpose)), (1, anonymous_subject())))
    return {"subject": subject, "client": draw(client(app, stress)), "purpose": purpose,
            "operation": draw(operation(stress))}


@st.composite
def plan_inputs(draw: st.DrawFn) -> dict[str, Any]:
    stress = draw(stresses)
    doc = draw(caller(stress))
    app = doc["client"]["app"]
    # A coordinate reached by two paths may appear twice (its code tags unite).
    doc["fields"] = draw(st.lists(field_entry(app), max_size=8))
    doc["usage"] = draw(usage(doc["subject"], app, stress))
    doc["signals"] = draw(signals(stress))
    return doc


# ---------------------------------------------------------------- objects input

privacy_settings = st.dictionaries(st.sampled_from(PRIVACY_KEYS), st.sampled_from(PRIVACY_VALUES),
                                   max_size=len(PRIVACY_KEYS))
visibilities = weighted((3, st.sampled_from(sorted(CLASSIFICATION["visibility"]))),
                        (1, st.sampled_from(VISIBILITIES)))
consent_lists = st.builds(
    lambda known, unknown: known + unknown,
    st.lists(st.sampled_from(PURPOSE_NAMES), max_size=3, unique=True),
    st.lists(st.sampled_from(UNKNOWN_PURPOSES), max_size=1))


@st.composite
def an_object(draw: st.DrawFn) -> dict[str, Any]:
    # attrs hold only classification.types.<T>.attrs, and only those the
    # object has: a profile that never stored settings has no `privacy`
    # (every key then takes its default).
    attrs: dict[str, Any] = {}
    if draw(st.integers(0, 4)):
        attrs["privacy"] = draw(privacy_settings)
    if draw(st.integers(0, 4)):
        attrs["visibility"] = draw(visibilities)
    if draw(st.integers(0, 4)):
        attrs["consent"] = draw(consent_lists)
    return {"type": draw(st.sampled_from(OBJECT_TYPES)),
            "relation": draw(st.sampled_from(["self", "other", "other"])),
            "attrs": attrs}


typed_coordinates = [c for c in ALL_COORDINATES if c.split(".", 1)[0] in OBJECT_TYPES]
typed_coordinate_lists = st.lists(st.sampled_from(typed_coordinates), max_size=8, unique=True)
other_coordinate_lists = st.lists(
    st.sampled_from([c for c in ALL_COORDINATES if c not in typed_coordinates]),
    max_size=1)


@st.composite
def objects_inputs(draw: st.DrawFn) -> dict[str, Any]:
    """The plan input without ``fields`` and ``usage``, plus the coordinates
    to decide and the objects."""
    stress = draw(stresses)
    doc = draw(caller(stress))
    doc["signals"] = draw(signals(stress))
    # Mostly coordinates of the object types, sometimes one of another type
    # (it gets no entry: only a type's own coordinates are decided).
    doc["coordinates"] = draw(typed_coordinate_lists) + draw(other_coordinate_lists)
    doc["objects"] = draw(st.lists(an_object(), max_size=6))
    return doc
