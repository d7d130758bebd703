"""Values exchanged with the limiter: exposures, charges, usage and results.

All are frozen dataclasses; none knows about storage.

Example:
    >>> e = Exposure(records=3, subjects=frozenset({"u1", "u2"}), cost=12)
    >>> (e.amount("records"), e.amount("subjects"), e.amount("requests"))
    (3, 2, 1)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fieldguard.errors import MalformedDecision, QuotaExceeded, Reason

PLAN_PATH = "fieldguard.plan"


@dataclass(frozen=True)
class Exposure:
    """What one request actually exposed (charged after the response).

    Attributes:
        records: objects returned.
        subjects: ids of the distinct data subjects whose data was released.
        sensitive: sensitive field values released.
        cost: the static query cost.
        requests: requests made (1 per request).
        probed_ids: ids the caller asked for by argument (``user(id: "1005")``),
            in request order; they feed the sequential-id probing score.
    """

    records: int = 0
    subjects: frozenset[str] = frozenset()
    sensitive: int = 0
    cost: int = 0
    requests: int = 1
    probed_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("records", "sensitive", "cost", "requests"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"Exposure.{name} must be a non-negative int, got {value!r}")

    def amount(self, measure: str) -> int:
        """The amount of ``measure`` (``requests``, ``records``, ``subjects``,
        ``sensitive``, ``cost``) this exposure charges."""
        if measure == "subjects":
            return len(self.subjects)
        value = getattr(self, measure, None)
        if not isinstance(value, int) or measure == "probed_ids":
            raise ValueError(f"unknown measure {measure!r}")
        return value


@dataclass(frozen=True)
class Charge:
    """One entry of the plan's ``charges``: count ``measure`` against
    ``quota`` under ``scope:key`` with ``limit`` per ``window_seconds``.

    Example:
        >>> Charge.from_mapping({"quota": "records_day", "scope": "subject", "key": "u7",
        ...                      "limit": 600, "measure": "records",
        ...                      "window_seconds": 86400}).limit
        600
    """

    quota: str
    scope: str
    key: str
    limit: int
    measure: str
    window_seconds: int

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | Charge) -> Charge:
        """Parse a plan charge.

        Raises:
            MalformedDecision: a field is missing or has the wrong type (the
                plan did not fit the contract; this fails the request closed).
        """
        if isinstance(raw, Charge):
            return raw
        if not isinstance(raw, Mapping):
            raise MalformedDecision(PLAN_PATH, f"charge is not an object: {raw!r}")
        try:
            quota, scope, key = raw["quota"], raw["scope"], raw["key"]
            limit, measure, window = raw["limit"], raw["measure"], raw["window_seconds"]
        except KeyError as exc:
            raise MalformedDecision(PLAN_PATH, f"charge lacks {exc.args[0]!r}: {raw!r}") from None
        strings = (quota, scope, key, measure)
        if not all(isinstance(v, str) and v for v in strings):
            raise MalformedDecision(PLAN_PATH, f"charge has non-string names: {raw!r}")
        for name, value in (("limit", limit), ("window_seconds", window)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise MalformedDecision(PLAN_PATH, f"charge {name} is not a number: {raw!r}")
            if value < 0 or (isinstance(value, float) and not value.is_integer()):
                raise MalformedDecision(PLAN_PATH, f"charge {name} is not a count: {raw!r}")
        return cls(quota, scope, key, int(limit), measure, int(window))

    @property
    def reason(self) -> Reason:
        """The reason a refusal by this charge gives (code ``quota.<name>``,
        naming the scope as the plan's throttle reasons do)."""
        return Reason(
            f"quota.{self.quota}",
            f"{self.scope} quota {self.quota} ({self.limit} {self.measure} per "
            f"{self.window_seconds}s) used up",
            self.scope,
        )


@dataclass(frozen=True)
class CounterState:
    """One counter after an operation.

    Attributes:
        charge: the charge the counter belongs to.
        amount: what the operation added (0 for a refused admission).
        used: the amount used in the window after the operation.
        retry_after: whole seconds until one more unit fits (0 if it fits now).
    """

    charge: Charge
    amount: int
    used: int
    retry_after: int = 0

    @property
    def remaining(self) -> int:
        """``limit - used``, never negative."""
        return max(0, self.charge.limit - self.used)

    @property
    def exhausted(self) -> bool:
        """True when nothing is left in the window."""
        return self.used >= self.charge.limit


def _retry(counters: tuple[CounterState, ...]) -> int:
    return max((c.retry_after for c in counters), default=0)


def rate_limit_headers(counters: tuple[CounterState, ...]) -> dict[str, str]:
    """IETF ``RateLimit-*`` headers for the tightest counter (least remaining
    relative to its limit); empty when there are no counters."""
    if not counters:
        return {}
    tight = min(counters, key=lambda c: (c.remaining / max(c.charge.limit, 1), c.remaining))
    reset = tight.retry_after if tight.exhausted else 0
    return {
        "RateLimit-Limit": str(tight.charge.limit),
        "RateLimit-Remaining": str(tight.remaining),
        "RateLimit-Reset": str(reset),
        "RateLimit-Policy": f"{tight.charge.limit};w={tight.charge.window_seconds}",
    }


@dataclass(frozen=True)
class ChargeResult:
    """What :meth:`Limiter.charge` recorded.

    Attributes:
        counters: every charged counter after the charge, in charge order.
        degraded: storage was down and every charged quota fails open, so
            nothing was recorded.
        held: after :meth:`Limiter.settle`, what the counters now hold for
            this request, as a reservation: settle it again to adjust the
            charge, e.g. :meth:`Limiter.release` it when the response could
            not be delivered after all (None after :meth:`Limiter.charge`,
            or when degraded).
    """

    counters: tuple[CounterState, ...] = ()
    degraded: bool = False
    held: Reservation | None = field(default=None, repr=False, compare=False)

    @property
    def exhausted(self) -> tuple[CounterState, ...]:
        """Counters with nothing left (the next request will be throttled)."""
        return tuple(c for c in self.counters if c.exhausted)

    @property
    def retry_after(self) -> int:
        """Seconds until every exhausted counter has room again (0 if none)."""
        return _retry(self.exhausted)

    def headers(self) -> dict[str, str]:
        """``RateLimit-*`` response headers (see :func:`rate_limit_headers`)."""
        return rate_limit_headers(self.counters)


@dataclass(frozen=True)
class Reservation:
    """The outcome of :meth:`Limiter.admit`: all charges reserved, or none.

    Attributes:
        admitted: True when every counter had room and was incremented.
        counters: counter states after the reservation; for a refusal, the
            states that were checked (``amount`` 0) — nothing was written.
        token: identifies the reserved moving-window entries (for refunds).
        degraded: storage was down and every quota fails open: admitted
            without counting.
    """

    admitted: bool
    counters: tuple[CounterState, ...]
    token: str = ""
    degraded: bool = False

    @property
    def blocked(self) -> tuple[CounterState, ...]:
        """The counters that refused the reservation."""
        if self.admitted:
            return ()
        return tuple(c for c in self.counters if c.retry_after > 0 or c.exhausted)

    @property
    def retry_after(self) -> int:
        """Seconds until the blocking counters have room (0 when admitted)."""
        return _retry(self.blocked)

    def require(self) -> Reservation:
        """Return self when admitted, else raise :class:`QuotaExceeded`.

        Raises:
            QuotaExceeded: with ``retry_after`` and one reason per blocking quota.
        """
        if self.admitted:
            return self
        blocked = self.blocked or self.counters
        raise QuotaExceeded(
            "; ".join(c.charge.reason.message for c in blocked) or "quota used up",
            retry_after=max(1, self.retry_after),
            reasons=tuple(c.charge.reason for c in blocked),
        )

    def headers(self) -> dict[str, str]:
        """``RateLimit-*`` response headers (see :func:`rate_limit_headers`)."""
        return rate_limit_headers(self.counters)


@dataclass(frozen=True)
class Usage:
    """Usage read before the plan: counters per scope and behavioural signals.

    Attributes:
        counters: scope → quota → amount used in the current window (scopes
            without a key, e.g. ``subject`` for anonymous callers, are empty).
        signals: ``enumeration_score``, ``distinct_subjects_<w>``,
            ``records_<w>``, ``request_rate_<w>`` … (see :class:`SignalConfig`).
        degraded: storage was down and every quota read fails open; counters
            and signals are then empty and ``signals["degraded"]`` is True.

    Example:
        >>> u = Usage(counters={"subject": {"records_day": 480}}, signals={})
        >>> u.as_input()["usage"]["ip"]
        {}
    """

    counters: Mapping[str, Mapping[str, int]]
    signals: Mapping[str, float | int | bool]
    degraded: bool = False
    scopes: tuple[str, ...] = ("subject", "app", "ip", "prefix")

    def used(self, scope: str, quota: str) -> int:
        """Amount of ``quota`` used under ``scope`` (0 when absent)."""
        return int(self.counters.get(scope, {}).get(quota, 0))

    def as_input(self) -> dict[str, Any]:
        """The ``usage`` and ``signals`` members of the plan input (fresh dicts)."""
        usage = {scope: dict(self.counters.get(scope, {})) for scope in self.scopes}
        return {"usage": usage, "signals": dict(self.signals)}


def ceil_seconds(seconds: float) -> int:
    """Whole seconds, rounded up, never negative (``Retry-After`` is an integer)."""
    return max(0, math.ceil(seconds))
