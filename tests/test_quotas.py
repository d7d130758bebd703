"""Quotas of one request: reserved once the plan allows, settled with what
the response exposed, given back when it fails (through the Session, which
owns a RequestQuotas, and directly)."""

from __future__ import annotations

import pytest

from fieldguard.context import Caller, Client, Subject
from fieldguard.guard import Guard, Operation
from fieldguard.policies.source import load_policy_set
from fieldguard.quotas import RequestQuotas

SHIPPED = load_policy_set("rego", "policies")
ALICE = Caller(Subject("u2", account_age_days=400), Client("203.0.113.5"))
USERS_PAGE = Operation("graphql", "query", "Users", fields={"Query.users": 1, "User.id": 1},
                       complexity={"cost": 10, "max_list": 10})


class BrokenSink:
    """An audit sink whose disk is full."""

    def emit(self, event: object) -> None:
        raise OSError("no space left on device")


def _used(guard: Guard) -> dict[str, int]:
    from fieldguard.limits import QuotaKeys

    keys = QuotaKeys.from_request(subject_id="u2", ip="203.0.113.5")
    return dict(guard.limiter.read(keys).counters.get("subject", {}))


def test_decide_reserves_the_estimate_and_charge_settles_the_exposure() -> None:
    guard = Guard(policy=SHIPPED, limiter="memory://")
    session = guard.session(ALICE)
    session.decide(USERS_PAGE)
    # one request, the static cost, and a page of records, held while it runs
    assert session.record_budget == session.reserved_records == 10
    assert _used(guard) == {"records_day": 10, "requests_minute": 1, "cost_hour": 10}
    assert session.take_records(12) == 10 and session.truncated == 2
    session.exposure.add_records(3)
    session.charge(10)
    session.finish()
    assert _used(guard) == {"records_day": 3, "requests_minute": 1, "cost_hour": 10}


def test_an_operation_without_a_page_size_may_use_the_whole_remaining_quota() -> None:
    guard = Guard(policy=SHIPPED, limiter="memory://")
    session = guard.session(ALICE)
    session.decide(Operation("rest", "query", "GET /users", fields={"User.id": 1}))
    assert session.record_budget == 600  # the standard tier's records_day
    session.finish("error")
    assert _used(guard) == {}


def test_a_request_that_is_never_charged_gives_its_reservation_back() -> None:
    from fieldguard.audit import MemorySink

    sink = MemorySink()
    guard = Guard(policy=SHIPPED, limiter="memory://", audit=sink)
    session = guard.session(ALICE)
    session.decide(USERS_PAGE)
    assert _used(guard)["records_day"] == 10
    session.finish("error")  # e.g. the run failed: nothing was released
    assert _used(guard) == {}
    assert sink.records[-1].outcome == "error"
    assert not session.release()  # nothing left to give back


def test_a_failing_audit_sink_refunds_what_was_charged() -> None:
    from fieldguard.errors import StorageError

    guard = Guard(policy=SHIPPED, limiter="memory://", audit=BrokenSink())
    session = guard.session(ALICE)
    session.decide(USERS_PAGE)
    session.exposure.add_records(4)
    session.charge(10)
    assert _used(guard)["records_day"] == 4
    with pytest.raises(StorageError, match="audit sink failed"):
        session.finish()
    # the caller answers with an error instead of the data: it costs nothing
    assert _used(guard) == {}


def test_a_refused_reservation_is_a_throttle_naming_the_quota_scope() -> None:
    """Another request of the same account reserves the room between this
    request's usage read and its reservation: the plan (on the usage read)
    allows, the reservation refuses, and the request is throttled."""
    from fieldguard.audit import MemorySink
    from fieldguard.errors import QuotaExceeded

    sink = MemorySink()
    guard = Guard(policy=SHIPPED, limiter="memory://", audit=sink)
    limiter = guard.limiter
    read = limiter.read
    first = guard.session(ALICE)

    def read_then_let_another_request_in(keys: object) -> object:
        usage = read(keys)
        limiter.read = read  # once
        first.decide(Operation("rest", "query", "GET /users", fields={"User.id": 1}))
        return usage

    limiter.read = read_then_let_another_request_in
    second = guard.session(ALICE)
    with pytest.raises(QuotaExceeded) as err:
        second.decide(USERS_PAGE)
    assert second.plan is not None and second.plan.allow  # the plan saw room
    assert err.value.code == "RATE_LIMITED" and err.value.http_status == 429
    assert err.value.retry_after is not None and err.value.retry_after >= 1
    assert [(r.code, r.scope) for r in err.value.reasons] == [("quota.records_day", "subject")]
    assert err.value.decision_id == second.decision_id
    assert second.outcome == "throttle" and second.errors == ["RATE_LIMITED"]
    second.finish()
    assert sink.records[-1].outcome == "throttle"
    assert sink.records[-1].errors == ["RATE_LIMITED"]
    # the refused request holds nothing; the first one holds the whole quota
    assert _used(guard)["records_day"] == 600
    first.finish("error")
    assert _used(guard) == {}


def test_the_records_estimate_is_the_larger_of_cost_and_page_size_within_the_room() -> None:
    nested = Operation("graphql", "query", None, complexity={"cost": 110, "max_list": 10})
    assert RequestQuotas.records_estimate(nested, 600) == 110  # 10 users x 10 posts + 10
    assert RequestQuotas.records_estimate(nested, 50) == 50
    events = Operation("graphql", "subscription", None, complexity={"cost": 3})
    assert RequestQuotas.records_estimate(events, 600) == 600  # not counted in advance


def test_without_a_limiter_nothing_is_counted_or_held() -> None:
    quotas = RequestQuotas(None, ALICE, [])
    doc: dict[str, object] = {}
    quotas.read(doc)
    assert doc == {} and quotas.keys is None
    assert quotas.take_records(5) == 5 and quotas.truncated == 0
    assert not quotas.release()
