"""The quota store goes away mid-test: the API fails closed, then recovers.

The demo app runs on uvicorn at ``127.0.0.1:<ephemeral>`` with
``limiter="redis://127.0.0.1:<port>/0"`` on a real ``redis-server`` this
test starts (``tests/support/redis_server.py``; skipped only when no binary
exists). Redis is stopped while the server keeps running, then started again
on the same port. Redis persists nothing here (``--save ""``), so counters
start from zero after the restart: that is the store's configuration, not
something these tests check.

Shipped policy; every request loop is bounded.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from fieldguard.audit.sinks import MemorySink
from tests.e2e.conftest import ApiFactory, codes_of, errors_of
from tests.support.redis_server import RedisServer

QUERY = "{ users(first: 5) { id handle } }"
#: One signed-in caller and one anonymous caller (different fail-mode paths
#: in the limiter: anonymous callers always fail closed; signed-in callers
#: fail closed because personal-data quotas may never fail open).
CALLERS: list[dict[str, Any]] = [{"token": "alice"}, {"ip": "203.0.113.9"}]

#: What must never reach a caller: driver messages, exception names, stack
#: traces, storage addresses.
LEAKS = re.compile(
    r"traceback|redis|connection ?refused|connectionerror|errno|error \d+|"
    r"socket|storageerror|\.py\b|127\.0\.0\.1|localhost",
    re.IGNORECASE,
)


def assert_served(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"]["users"], body
    assert not codes_of(response), body


def assert_failed_closed(response: httpx.Response, port: int) -> None:
    """503, ``STORAGE_UNAVAILABLE``, no data at all, nothing internal."""
    assert response.status_code == 503, response.text
    body = response.json()
    assert body.get("data") is None, body
    assert codes_of(response) == ["STORAGE_UNAVAILABLE"], body
    text = response.text
    assert not LEAKS.search(text), f"internal detail in the response: {text}"
    assert str(port) not in text, text
    assert "user" not in text.lower().replace("users", ""), text  # no handle, no id
    for err in errors_of(response):
        assert "stacktrace" not in str(err).lower() and "exception" not in str(err).lower()


def test_quota_store_outage_fails_closed_and_recovers(
    make_api: ApiFactory, redis_server: RedisServer
) -> None:
    """Redis up: served. Redis stopped: every request (signed-in and
    anonymous) is refused with HTTP 503 and ``STORAGE_UNAVAILABLE``, with no
    data and no driver detail in the body, and each refusal has an audit
    record naming the error. Redis started again on the same port: served
    again, without restarting the API.
    """
    audit = MemorySink()
    api = make_api(users=50, limiter=redis_server.url, audit=audit)

    for caller in CALLERS:
        assert_served(api.graphql(QUERY, **caller))
    served_before = len(audit.records)

    redis_server.stop()
    assert not redis_server.ping()
    outage = [api.graphql(QUERY, **caller) for caller in CALLERS for _ in range(2)]
    for response in outage:
        assert_failed_closed(response, redis_server.port)

    # One audit record per refused request, each saying why; no exposure.
    failed = audit.records[served_before:]
    assert len(failed) == len(outage), [e.outcome for e in failed]
    for event in failed:
        assert "STORAGE_UNAVAILABLE" in event.errors, event.as_dict()
        assert event.outcome != "allow", event.as_dict()
        assert event.exposure.get("records", 0) == 0, event.exposure
        assert not event.exposure.get("subjects"), event.exposure
    # Response and audit record correlate by decision id where one exists.
    ids = {e.decision_id for e in failed if e.decision_id}
    for response in outage:
        rid = errors_of(response)[0].get("extensions", {}).get("decision_id")
        assert rid is None or rid in ids

    redis_server.start()
    assert redis_server.ping()
    for caller in CALLERS:
        assert_served(api.graphql(QUERY, **caller))
    assert audit.records[-1].outcome == "allow"
    assert not audit.records[-1].errors


def test_outage_audit_reaches_a_jsonl_log(
    make_api: ApiFactory, redis_server: RedisServer, tmp_path: Any
) -> None:
    """The same outage with the audit log as JSON Lines on disk (what an
    operator would read): the refused request's line carries the error code
    and no released data."""
    import json

    from fieldguard.audit.sinks import JsonLinesSink

    path = tmp_path / "audit.jsonl"
    sink = JsonLinesSink(path)
    api = make_api(users=50, limiter=redis_server.url, audit=sink)
    assert_served(api.graphql(QUERY, token="alice"))
    redis_server.stop()
    assert_failed_closed(api.graphql(QUERY, token="alice"), redis_server.port)
    sink.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 2, lines
    ok, failed = lines
    assert ok["outcome"] == "allow" and not ok["errors"]
    assert failed["errors"] == ["STORAGE_UNAVAILABLE"], failed
    assert failed["exposure"]["records"] == 0 and not failed["exposure"]["subjects"]
