"""Scrapers against the guarded demo API, over real HTTP.

Each test starts the demo app (strawberry over ASGI, guarded by the policies
in ``rego/`` + ``policies/``) on uvicorn at ``127.0.0.1:<ephemeral>`` and
talks to it with httpx. Callers are told apart by demo headers only:
``Authorization: Bearer alice`` (standard tier, 400 days old), ``Bearer
victor`` (verified tier), and anonymous callers whose address comes from
``X-Forwarded-For`` (the app is built with ``trust_forwarded=True``).

Quotas: the tests that page one account (alice, victor) run on the *shipped*
``policies/limits.yaml`` and read its numbers, with a store large enough to
reach them. The prefix test edits one number in a temporary copy of
``policies/`` (see its docstring): the shipped /24 quota is larger than
anything 20 anonymous callers can read from a small store.

Every request loop is bounded (``MAX_REQUESTS`` or a smaller explicit cap).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from fieldguard.audit.sinks import MemorySink
from fieldguard.demo.app import ACCOUNTS
from tests.e2e.conftest import (
    MAX_REQUESTS,
    Api,
    ApiFactory,
    codes_of,
    errors_of,
    reasons_of,
    shipped_limits,
)

LIMITS = shipped_limits()
STANDARD_RECORDS_DAY = int(LIMITS["tiers"]["standard"]["quotas"]["records_day"])
VERIFIED_RECORDS_DAY = int(LIMITS["tiers"]["verified"]["quotas"]["records_day"])
ANON_RECORDS_DAY = int(LIMITS["tiers"]["anonymous"]["quotas"]["records_day"])
CHALLENGE_SCORE = float(LIMITS["enumeration"]["challenge_score"])

#: Demo users: u<n> is hidden from other callers when n % 10 == 3 (private)
#: or n % 50 == 7 (suspended), so 800 users list 704 visible profiles: more
#: than the standard quota plus one page, which the paging tests need.
PAGING_USERS = 800
PAGE_SIZE = 50


def visible_users(n: int) -> int:
    """How many of the demo's users ``u1..u<n>`` another caller can list."""
    return sum(1 for i in range(1, n + 1) if i % 10 != 3 and i % 50 != 7)


@dataclass
class Paging:
    """What one caller got while paging through ``users``."""

    received: int = 0
    pages: int = 0
    refusal: httpx.Response | None = None
    store_exhausted: bool = False
    partial_errors: list[dict[str, Any]] = field(default_factory=list)


def users_page(api: Api, first: int, after: str | None, **caller: Any) -> httpx.Response:
    cursor = f', after: "{after}"' if after else ""
    return api.graphql(f"{{ users(first: {first}{cursor}) {{ id handle }} }}", **caller)


def page_until_refused(api: Api, *, page_size: int, max_pages: int, **caller: Any) -> Paging:
    """Page through every user as one caller until the first non-200 answer,
    an empty page, or ``max_pages`` requests."""
    out = Paging()
    after: str | None = None
    for _ in range(max_pages):
        response = users_page(api, page_size, after, **caller)
        if response.status_code != 200:
            out.refusal = response
            return out
        body = response.json()
        out.partial_errors += body.get("errors") or []
        page = body["data"]["users"]
        out.pages += 1
        if not page:
            out.store_exhausted = True
            return out
        out.received += len(page)
        after = page[-1]["id"]
    return out


def assert_rate_limited(response: httpx.Response) -> None:
    """429, ``Retry-After`` in whole seconds > 0, ``RATE_LIMITED``, no data."""
    assert response.status_code == 429, response.text
    retry_after = response.headers.get("retry-after")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) > 0, (
        response.headers
    )
    body = response.json()
    assert body.get("data") is None, body
    assert codes_of(response)[:1] == ["RATE_LIMITED"], body
    ext = errors_of(response)[0]["extensions"]
    assert ext.get("retry_after") == int(retry_after), ext


# ------------------------------------------------------------------ 1. one account


def test_one_account_is_cut_off_at_its_daily_record_quota(make_api: ApiFactory) -> None:
    """A standard account (alice) paging through every user is refused once it
    has received its daily record quota (shipped ``standard.records_day``).

    Tolerance: ``limit <= received < limit + page_size``. Usage is read
    *before* the plan and the records are charged *after* the response, so
    the request that crosses the limit is decided on usage that is still
    below it and may return up to a whole page; the next request reads
    ``used >= limit`` and is refused. (One sequential caller, so no
    concurrency term; if the guard trims the crossing page to the quota's
    ``remaining``, received is exactly ``limit``, which the bound includes.)
    The lower bound says nobody is cut off early.
    """
    assert visible_users(PAGING_USERS) > STANDARD_RECORDS_DAY + PAGE_SIZE, (
        "store too small to reach the standard quota"
    )
    api = make_api(users=PAGING_USERS)
    max_pages = min(MAX_REQUESTS, STANDARD_RECORDS_DAY // PAGE_SIZE * 2 + 10)

    alice = page_until_refused(api, token="alice", page_size=PAGE_SIZE, max_pages=max_pages)

    print(
        f"\nalice (standard): received {alice.received} records in {alice.pages} pages "
        f"before the first refusal; quota {STANDARD_RECORDS_DAY}, "
        f"over-admission {alice.received - STANDARD_RECORDS_DAY}"
    )
    assert alice.refusal is not None, (
        f"never refused after {alice.received} records (store exhausted: {alice.store_exhausted})"
    )
    assert_rate_limited(alice.refusal)
    assert "quota.records_day" in [r["code"] for r in reasons_of(alice.refusal)]
    assert STANDARD_RECORDS_DAY <= alice.received < STANDARD_RECORDS_DAY + PAGE_SIZE
    # Partial pages (if any) are flagged as rate-limited, never silently short.
    assert all(
        (e.get("extensions") or {}).get("code") == "RATE_LIMITED" for e in alice.partial_errors
    ), alice.partial_errors

    # Still cut off: the next page is refused too, whatever cursor it asks for.
    assert_rate_limited(users_page(api, 1, None, token="alice"))


# ------------------------------------------------------------------ 4. verified tier


def test_verified_account_reads_past_the_standard_cut_off(make_api: ApiFactory) -> None:
    """The verified tier (victor) gets its higher quota (shipped
    ``verified.records_day``): on the same server and from the same address,
    it reads well past the point where the standard account (alice) is cut
    off, and is not refused before its own quota (or the end of the store).
    """
    assert VERIFIED_RECORDS_DAY > STANDARD_RECORDS_DAY + PAGE_SIZE
    api = make_api(users=PAGING_USERS)
    max_pages = min(MAX_REQUESTS, visible_users(PAGING_USERS) // PAGE_SIZE + 5)

    alice = page_until_refused(api, token="alice", page_size=PAGE_SIZE, max_pages=max_pages)
    victor = page_until_refused(api, token="victor", page_size=PAGE_SIZE, max_pages=max_pages)

    print(
        f"\nalice (standard) cut off after {alice.received}; victor (verified) read "
        f"{victor.received} (store exhausted: {victor.store_exhausted}, refused: "
        f"{victor.refusal is not None}; verified quota {VERIFIED_RECORDS_DAY})"
    )
    assert alice.refusal is not None
    assert_rate_limited(alice.refusal)
    # Past alice's cut-off by more than the tolerance of one page.
    assert victor.received >= alice.received + PAGE_SIZE
    if victor.refusal is not None:
        assert victor.received >= VERIFIED_RECORDS_DAY, victor.refusal.text
    else:
        assert victor.store_exhausted
        assert victor.received == visible_users(PAGING_USERS)


# ------------------------------------------------------------------ 2. one /24 prefix

PREFIX_RECORDS_DAY = 300
ROTATING = [f"203.0.113.{10 + k}" for k in range(20)]
ROTATION_PAGE = 10


@dataclass
class Rotation:
    received: dict[str, int]
    refusal: httpx.Response | None
    requests: int


def rotate_through_one_prefix(api: Api) -> Rotation:
    """20 anonymous callers from 203.0.113.0/24 take turns reading the next
    page of users (each keeps its own cursor) until one is refused."""
    received = dict.fromkeys(ROTATING, 0)
    cursors: dict[str, str | None] = dict.fromkeys(ROTATING)
    for n in range(MAX_REQUESTS):
        ip = ROTATING[n % len(ROTATING)]
        response = users_page(api, ROTATION_PAGE, cursors[ip], ip=ip)
        if response.status_code != 200:
            return Rotation(received, response, n + 1)
        page = response.json()["data"]["users"]
        assert page, "store exhausted before the prefix quota"
        received[ip] += len(page)
        cursors[ip] = page[-1]["id"]
    return Rotation(received, None, MAX_REQUESTS)


def prefix_app(make_api: ApiFactory) -> Api:
    return make_api(
        users=300,
        audit=MemorySink(),
        limits={"network_quotas": {"prefix": {"records_day": PREFIX_RECORDS_DAY}}},
    )


def test_rotating_callers_in_one_prefix_are_cut_off_by_the_prefix_quota(
    make_api: ApiFactory,
) -> None:
    """20 anonymous callers spread over one /24 (X-Forwarded-For
    203.0.113.10-29), each far below its own per-address quota, are cut off
    together by the /24 prefix quota; a caller from another /24 is not.

    Policy adjusted in a temporary copy: ``network_quotas.prefix.records_day``
    = 300 (shipped 10,000 — with the anonymous per-address quota of 100, 20
    addresses could read at most 2,000, so the shipped prefix number is not
    reachable with a small store). Everything else is shipped.

    Tolerance for the prefix total: ``limit <= total < limit + page``, as for
    one account (usage read before the plan, charged after; the callers take
    turns, so one request is in flight at a time).

    Rotating API keys (``X-Client-App``) is no way around it either: an app
    without a contract in ``clients.yaml`` is refused outright, which this
    test checks first.
    """
    api = prefix_app(make_api)
    unknown_app = api.graphql("{ users(first: 5) { id } }", ip=ROTATING[0], client_app="key-1")
    assert unknown_app.status_code == 403
    assert "client.unknown" in [r["code"] for r in reasons_of(unknown_app)]

    run = rotate_through_one_prefix(api)
    total = sum(run.received.values())
    print(
        f"\n/24 rotation: {total} records over {run.requests} requests from "
        f"{len(ROTATING)} addresses (max per address {max(run.received.values())}, "
        f"per-address quota {ANON_RECORDS_DAY}); prefix quota {PREFIX_RECORDS_DAY}, "
        f"over-admission {total - PREFIX_RECORDS_DAY}"
    )
    assert run.refusal is not None, f"not refused after {total} records"
    assert_rate_limited(run.refusal)
    # No single address came near its own quota: the prefix caught them.
    assert max(run.received.values()) < ANON_RECORDS_DAY
    assert PREFIX_RECORDS_DAY <= total < PREFIX_RECORDS_DAY + ROTATION_PAGE
    messages = " ".join(r["message"] for r in reasons_of(run.refusal))
    assert "prefix" in messages, reasons_of(run.refusal)

    # Every address in the /24 is now refused, including one never seen.
    for ip in [*ROTATING, "203.0.113.200"]:
        assert_rate_limited(users_page(api, ROTATION_PAGE, None, ip=ip))

    # Another /24 is unaffected.
    other = users_page(api, ROTATION_PAGE, None, ip="192.0.2.10")
    assert other.status_code == 200, other.text
    assert other.json()["data"]["users"], other.text
    assert not other.json().get("errors")


def test_prefix_refusal_reason_names_the_prefix_scope(make_api: ApiFactory) -> None:
    """The refusal of a caller caught by the /24 quota says, in machine-readable
    form, that the *prefix* scope is exhausted: a reason in
    ``extensions.reasons`` whose code names the prefix scope, or which carries
    ``scope: "prefix"`` (the Rego emits ``scope`` on every quota reason). A
    client (or an operator reading the response) must be able to tell "your
    account is over" from "your network is over" without parsing prose.

    Policy adjusted as in the test above (prefix ``records_day`` = 300).
    """
    api = prefix_app(make_api)
    run = rotate_through_one_prefix(api)
    assert run.refusal is not None
    assert_rate_limited(run.refusal)

    # The policy itself did name the scope (audit record of the refusal).
    audit = api.audit
    assert audit is not None
    refused = [e for e in audit.records if e.outcome == "throttle"]
    assert refused, [e.outcome for e in audit.records]
    policy_reasons = refused[-1].result["reasons"]
    assert any(r.get("scope") == "prefix" for r in policy_reasons), policy_reasons

    reasons = reasons_of(run.refusal)
    assert any(r.get("scope") == "prefix" or "prefix" in r["code"].split(".") for r in reasons), (
        f"no reason in extensions names the prefix scope: {reasons}"
    )


# ------------------------------------------------------------------ 3. sequential ids

ENUMERATORS = [
    pytest.param({"token": "alice"}, "CHALLENGE_REQUIRED", 403, id="signed-in"),
    pytest.param({"ip": "203.0.113.77"}, "FORBIDDEN", 403, id="anonymous"),
]
#: Fixed, scattered ids a person might open (no two within probe_delta=3).
RANDOM_PROFILES = ["u17", "u142", "u260", "u88", "u205"]


def profile(api: Api, user_id: str, **caller: Any) -> httpx.Response:
    return api.graphql(f'{{ user(id: "{user_id}") {{ id handle }} }}', **caller)


def scores_of(audit: MemorySink, caller: dict[str, str]) -> list[float]:
    """``input.signals.enumeration_score`` of every decision for ``caller``
    (by subject id for a token, else by client address), in order."""
    subject = ACCOUNTS[caller["token"]].id if "token" in caller else None
    out = []
    for event in audit.records:
        doc = event.input
        if subject is not None and doc.get("subject", {}).get("id") != subject:
            continue
        if subject is None and doc.get("client", {}).get("ip") != caller.get("ip"):
            continue
        out.append(float(doc.get("signals", {}).get("enumeration_score", 0.0)))
    return out


@pytest.mark.parametrize(("caller", "code", "status"), ENUMERATORS)
def test_sequential_id_probing_is_flagged(
    make_api: ApiFactory, caller: dict[str, str], code: str, status: int
) -> None:
    """One caller opening u1, u2, u3, … is flagged: the enumeration signal the
    plan sees (``input.signals.enumeration_score``, read from the audit
    record of every decision) rises with each probe until it reaches the
    shipped ``enumeration.challenge_score``, and then the plan challenges a
    signed-in caller (``CHALLENGE_REQUIRED``) or denies an anonymous one
    (``FORBIDDEN``), with reason ``enumeration.suspected``. Meanwhile a caller
    opening a few scattered profiles is not flagged. Shipped policy.
    """
    audit = MemorySink()
    api = make_api(users=300, audit=audit)

    refusal = None
    probes = 0
    for n in range(1, 31):  # bounded: the score saturates at 10 distinct ids
        probes = n
        response = profile(api, f"u{n}", **caller)
        if response.status_code != 200:
            refusal = response
            break
        assert not codes_of(response), response.text

    scores = scores_of(audit, caller)
    print(f"\nenumerator {caller}: refused at probe {probes}; scores {scores}")
    assert refusal is not None, f"30 sequential probes never flagged; scores {scores}"
    assert refusal.status_code == status, refusal.text
    assert codes_of(refusal)[:1] == [code], refusal.text
    assert "enumeration.suspected" in [r["code"] for r in reasons_of(refusal)]
    assert refusal.json().get("data") is None
    # The signal rose monotonically from 0 and crossed the threshold exactly
    # at the refused decision.
    assert len(scores) == probes
    assert scores[0] == 0.0
    assert scores == sorted(scores)
    assert all(s < CHALLENGE_SCORE for s in scores[:-1])
    assert scores[-1] >= CHALLENGE_SCORE

    # A different caller opening a few scattered profiles is not flagged.
    browser = {"token": "victor"} if "token" in caller else {"ip": "203.0.113.78"}
    for user_id in RANDOM_PROFILES:
        response = profile(api, user_id, **browser)
        assert response.status_code == 200, response.text
        assert not codes_of(response), response.text
        assert response.json()["data"]["user"]["id"] == user_id
    browser_scores = scores_of(audit, browser)
    assert len(browser_scores) == len(RANDOM_PROFILES)
    assert max(browser_scores) < CHALLENGE_SCORE, browser_scores
