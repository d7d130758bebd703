"""One request's quotas: read before the plan, reserve once it allows,
settle (or give back) after the response.

A :class:`RequestQuotas` belongs to one :class:`~fieldguard.guard.Session`
and talks to the guard's :class:`~fieldguard.limits.Limiter` in at most
three round trips: :meth:`~RequestQuotas.read` puts every counter and signal
in the plan input; :meth:`~RequestQuotas.reserve` atomically reserves the
request's estimate on every quota the plan charges (all or nothing), so
requests running at the same time cannot together exceed a quota; after the
response :meth:`~RequestQuotas.charge` settles the reservation with what was
actually released, and :meth:`~RequestQuotas.release` gives back what a
failed request holds.

Example:
    >>> from fieldguard.guard import Operation
    >>> users = Operation("graphql", "query", None, complexity={"cost": 10, "max_list": 10})
    >>> RequestQuotas.records_estimate(users, 600), RequestQuotas.records_estimate(users, 4)
    (10, 4)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from fieldguard.audit.events import Exposure
from fieldguard.context import Caller
from fieldguard.errors import FieldGuardError, QuotaExceeded, Reason, StorageError
from fieldguard.policies.contract import Plan

if TYPE_CHECKING:
    from fieldguard.guard import Operation

logger = logging.getLogger(__name__)


class RequestQuotas:
    """The quota state of one request (see the module docs).

    Args:
        limiter: the guard's limiter, or None for no quotas.
        caller: who is asking (the quota keys: subject, app, IP, prefix).
        errors: the session's error codes; storage failures are added.

    Attributes:
        record_budget: guarded records this request may still release (None:
            unlimited): what :meth:`reserve` reserved on the plan's record
            charges, at most their tightest ``remaining``.
        reserved_records: records reserved for this request (None: no record quota).
        truncated: records withheld because the budget ran out.
    """

    def __init__(self, limiter: Any, caller: Caller, errors: list[str]) -> None:
        self.limiter = limiter
        self.caller = caller
        self.errors = errors
        self.record_budget: int | None = None
        self.reserved_records: int | None = None
        self.truncated = 0
        self._usage: Any = None  # (keys, usage) read before the plan
        #: the reservation, admitted and not yet settled or released
        self._reservation: Any = None
        #: what the settle left counted (refunded if the response is dropped)
        self._held: Any = None
        self._room: int | None = None
        self._lock = threading.Lock()

    @property
    def keys(self) -> Any:
        """The quota keys of this request (None before :meth:`read`)."""
        return self._usage[0] if self._usage else None

    @property
    def holds_reservation(self) -> bool:
        """True while a reservation is admitted and neither settled nor released."""
        return self._reservation is not None

    # -- before the plan -------------------------------------------------------

    def read(self, doc: dict[str, Any]) -> None:
        """Put current usage and signals in the plan input ``doc``.

        Raises:
            StorageError: storage is down and a quota fails closed.
        """
        if self.limiter is None:
            return
        keys = self._keys()
        with self._noting_errors():
            usage = self.limiter.read(keys)
        self._took(keys, usage, doc)

    async def aread(self, doc: dict[str, Any]) -> None:
        """Async :meth:`read` (the event loop is not blocked)."""
        if self.limiter is None:
            return
        keys = self._keys()
        with self._noting_errors():
            usage = await self.limiter.aread(keys)
        self._took(keys, usage, doc)

    def _keys(self) -> Any:
        from fieldguard.limits import QuotaKeys

        return QuotaKeys.from_request(subject_id=self.caller.subject.id,
                                      app=self.caller.client.app, ip=self.caller.client.ip)

    def _took(self, keys: Any, usage: Any, doc: dict[str, Any]) -> None:
        self._usage = (keys, usage)
        doc.update(usage.as_input())

    @contextmanager
    def _noting_errors(self) -> Iterator[None]:
        """Record the code of a failing storage call in :attr:`errors`."""
        try:
            yield
        except FieldGuardError as exc:
            self.errors.append(exc.code)
            raise

    # -- once the plan allows -------------------------------------------------

    def room(self, plan: Plan) -> int | None:
        """The tightest room of the plan's record charges (None: none): their
        ``remaining``, else ``limit`` minus the usage read before the plan."""
        usage = self._usage[1] if self._usage else None
        rooms = []
        for charge in plan.charges:
            if charge.get("measure") != "records":
                continue
            remaining = charge.get("remaining")
            if isinstance(remaining, int) and not isinstance(remaining, bool):
                rooms.append(remaining)
            elif isinstance(charge.get("limit"), int):
                used = usage.used(str(charge.get("scope")), str(charge.get("quota"))) \
                    if usage is not None else 0
                rooms.append(int(charge["limit"]) - used)
        return max(min(rooms), 0) if rooms else None

    @staticmethod
    def records_estimate(op: Operation, room: int) -> int:
        """The most records ``op`` is expected to release, within ``room``.

        A GraphQL operation's static ``cost`` counts every object it can
        return when its lists hold what their page arguments ask for (each
        object type weighs 1 by default), and ``max_list`` is its largest
        page; the larger of the two bounds its records. An operation with
        neither (a REST call that gave no page size) and a subscription (its
        events are not counted in advance) may use the whole ``room``.

        Example:
            >>> from fieldguard.guard import Operation
            >>> RequestQuotas.records_estimate(Operation("rest", "query", "GET /users"), 600)
            600
        """
        if op.type == "subscription":
            return room
        sizes = [v for v in (op.complexity.get("cost"), op.complexity.get("max_list"))
                 if isinstance(v, int) and not isinstance(v, bool)]
        if not sizes:
            return room
        return min(room, max(*sizes, 1))

    def reserve(self, op: Operation, plan: Plan, decision_id: str | None) -> None:
        """Reserve this request's estimate on every charge of the plan, all or
        nothing, in one round trip: one request, the static cost, and the
        records it may release (which become :attr:`record_budget`).

        Raises:
            QuotaExceeded: requests running at the same time took the room
                the plan saw.
            FieldGuardError: storage is down (fail closed) or the charges are
                malformed.
        """
        estimate = self._estimate(op, plan)
        if estimate is None:
            return
        with self._noting_errors():
            reservation = self.limiter.admit(plan.charges, estimate, keys=self.keys)
        self._admitted(reservation, estimate.records, decision_id)

    async def areserve(self, op: Operation, plan: Plan, decision_id: str | None) -> None:
        """Async :meth:`reserve`."""
        estimate = self._estimate(op, plan)
        if estimate is None:
            return
        with self._noting_errors():
            reservation = await self.limiter.aadmit(plan.charges, estimate, keys=self.keys)
        self._admitted(reservation, estimate.records, decision_id)

    def _estimate(self, op: Operation, plan: Plan) -> Any:
        """What to reserve (None: nothing to reserve); sets the record budget
        to the plan's room until the reservation narrows it."""
        from fieldguard.limits import Exposure as Estimate

        room = self._room = self.room(plan)
        self.record_budget = room
        if self.limiter is None or not plan.charges:
            return None
        records = self.records_estimate(op, room) if room is not None else 0
        cost = op.complexity.get("cost", 0)
        return Estimate(records=records, requests=1,
                        cost=cost if isinstance(cost, int) and cost > 0 else 0)

    def _admitted(self, reservation: Any, records: int, decision_id: str | None) -> None:
        if not reservation.admitted:
            err = _refused(reservation, decision_id)
            self.errors.append(err.code)
            raise err
        self._reservation = reservation
        if self._room is not None:
            self.reserved_records = self.record_budget = records

    def take_records(self, wanted: int) -> int:
        """Take up to ``wanted`` records from the request's budget; returns
        how many may be released (the rest are withheld and counted)."""
        with self._lock:
            if self.record_budget is None:
                return wanted
            granted = min(wanted, self.record_budget)
            self.record_budget -= granted
            self.truncated += wanted - granted
            return granted

    # -- what the response reports ---------------------------------------------

    def tightest(self, plan: Plan | None, measure: str,
                 extra: int) -> tuple[Mapping[str, Any], int] | None:
        """The plan's charge of ``measure`` with the least room left once
        ``extra`` more is counted, and that room."""
        if plan is None or not self._usage:
            return None
        usage = self._usage[1]
        best: tuple[Mapping[str, Any], int] | None = None
        for charge in plan.charges:
            if charge.get("measure") != measure or not isinstance(charge.get("limit"), int):
                continue
            used = usage.used(str(charge.get("scope")), str(charge.get("quota")))
            room = max(int(charge["limit"]) - used - extra, 0)
            if best is None or room < best[1]:
                best = (charge, room)
        return best

    def cost_status(self, plan: Plan | None, requested: int) -> dict[str, Any]:
        """The GraphQL ``extensions.cost`` object (Shopify/GitHub style).

        fieldguard charges the *requested* static cost, as GitHub does (page
        sizes asked for, not items found), so ``actualQueryCost`` equals it.
        ``throttleStatus`` describes the tightest cost quota of the plan.
        """
        status: dict[str, Any] = {"requestedQueryCost": requested,
                                  "actualQueryCost": requested}
        tight = self.tightest(plan, "cost", requested)
        if tight is not None:
            charge, room = tight
            window = max(int(charge.get("window_seconds") or 1), 1)
            status["throttleStatus"] = {
                "maximumAvailable": int(charge["limit"]),
                "currentlyAvailable": room,
                "restoreRate": round(int(charge["limit"]) / window, 3),
                "quota": charge.get("quota"), "scope": charge.get("scope"),
            }
        return status

    def rate_limit_headers(self, plan: Plan | None, records: int) -> dict[str, str]:
        """IETF ``RateLimit-Policy`` / ``RateLimit`` headers for the tightest
        record quota (draft-ietf-httpapi-ratelimit-headers), after this
        request's ``records`` are counted.

        Example (shape): ``RateLimit-Policy: "records_day";q=600;w=86400`` and
        ``RateLimit: "records_day";r=512;t=86400``.
        """
        tight = self.tightest(plan, "records", records)
        if tight is None:
            return {}
        charge, room = tight
        name, window = charge.get("quota"), int(charge.get("window_seconds") or 0)
        return {"RateLimit-Policy": f'"{name}";q={int(charge["limit"])};w={window}',
                "RateLimit": f'"{name}";r={room};t={window}'}

    # -- after the response ------------------------------------------------------

    def charge(self, plan: Plan, exposure: Exposure, op: Operation | None, cost: int) -> None:
        """Settle the reservation with what the response exposed (or charge
        it, when nothing was reserved), in one round trip.

        Raises:
            StorageError: the quota store failed after the data was produced;
                the caller must not release the data.
        """
        if self.limiter is None or not plan.charges:
            return
        charged, reservation = self._to_charge(exposure, op, cost)
        with self._unsettled_on_error(reservation):
            if reservation is None:
                self.limiter.charge(plan.charges, charged, keys=self.keys)
            else:
                self._held = self.limiter.settle(reservation, charged, keys=self.keys).held

    async def acharge(self, plan: Plan, exposure: Exposure, op: Operation | None,
                      cost: int) -> None:
        """Async :meth:`charge`."""
        if self.limiter is None or not plan.charges:
            return
        charged, reservation = self._to_charge(exposure, op, cost)
        with self._unsettled_on_error(reservation):
            if reservation is None:
                await self.limiter.acharge(plan.charges, charged, keys=self.keys)
            else:
                settled = await self.limiter.asettle(reservation, charged, keys=self.keys)
                self._held = settled.held

    def _to_charge(self, exposure: Exposure, op: Operation | None,
                   cost: int) -> tuple[Any, Any]:
        """What to count, and the reservation to settle (taken: a settle
        happens once)."""
        reservation, self._reservation = self._reservation, None
        return _charged(exposure, op, cost), reservation

    @contextmanager
    def _unsettled_on_error(self, reservation: Any) -> Iterator[None]:
        try:
            yield
        except StorageError as exc:
            self._reservation = reservation  # not settled: release() gives it back
            self.errors.append(exc.code)
            raise

    def release(self, decision_id: str | None = None) -> bool:
        """Give back what this request holds: the whole reservation before
        :meth:`charge`, what the charge counted after it (the response was
        dropped after all). Behavioural signals keep what they recorded.

        Returns True when something was given back. A storage failure is
        logged and recorded in :attr:`errors`; the reservation then stays
        counted until its window ends (fail closed).
        """
        held = self._take_held()
        if held is None:
            return False
        try:
            self.limiter.release(held, keys=self.keys)
        except FieldGuardError as exc:
            return self._not_released(exc, decision_id)
        return True

    async def arelease(self, decision_id: str | None = None) -> bool:
        """Async :meth:`release`."""
        held = self._take_held()
        if held is None:
            return False
        try:
            await self.limiter.arelease(held, keys=self.keys)
        except FieldGuardError as exc:
            return self._not_released(exc, decision_id)
        return True

    def _take_held(self) -> Any:
        held = self._reservation if self._reservation is not None else self._held
        self._reservation = self._held = None
        return None if self.limiter is None else held

    def _not_released(self, exc: FieldGuardError, decision_id: str | None) -> bool:
        self.errors.append(exc.code)
        logger.warning("could not release the quota reservation of %s: %s", decision_id, exc)
        return False


def _charged(exposure: Exposure, op: Operation | None, cost: int) -> Any:
    """What a response exposed, as the limiter counts it."""
    from fieldguard.limits import Exposure as Charged

    ex = exposure.as_dict()
    sensitive = sum(ex["released"].values()) + sum(ex["masked"].values())
    return Charged(records=exposure.records, subjects=frozenset(ex["subjects"]),
                   sensitive=sensitive, cost=cost, requests=1,
                   probed_ids=op.probed_ids if op else ())


def _refused(reservation: Any, decision_id: str | None) -> QuotaExceeded:
    """The plan allowed on usage read a moment ago, but requests running at
    the same time took the room first."""
    blocked = reservation.blocked or reservation.counters
    reasons = [
        Reason(f"quota.{c.charge.quota}",
               f"{c.charge.quota} quota for this {c.charge.scope} has no room for this "
               f"request ({c.used} of {c.charge.limit} {c.charge.measure} used or held "
               f"by requests in progress)", c.charge.scope)
        for c in blocked
    ]
    msg = "; ".join(r.message for r in reasons) or "quota used up"
    return QuotaExceeded(msg, retry_after=max(reservation.retry_after, 1),
                         reasons=reasons, decision_id=decision_id)
