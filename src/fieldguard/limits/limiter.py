"""The limiter: read usage before the plan, reserve, charge after the response.

Each limiter call is one :class:`~fieldguard.limits.backend.Batch`, so one
storage round trip whatever the number of quotas, scopes and signals. A
request makes two (:meth:`Limiter.read`, then :meth:`Limiter.charge`) or,
when it reserves before executing as :class:`fieldguard.guard.Session` does,
three (:meth:`Limiter.read`, :meth:`Limiter.admit`, :meth:`Limiter.settle`;
a request that fails after :meth:`Limiter.admit` makes a
:meth:`Limiter.release` instead of the settle).

**Read-then-charge is racy by design.** The plan decides from usage read
*before* the request and the charge lands *after* it, so N concurrent requests
can all read ``used < limit`` and all be served: over-admission up to
``concurrency x per-request amount``. That is the tolerance of the plain
``read`` → plan → ``charge`` flow. Where that is not acceptable, reserve:

* :meth:`Limiter.admit` checks **and** increments every charged counter in
  one atomic step (a Lua script on Redis, a lock on memory) — all or nothing.
  With the moving window (default) admission is exact: never more than
  ``limit`` units in any window, under any concurrency. With the sliding
  window counter it is exact against its own weighted count, which
  approximates the true sliding count (``limits``' documented trade-off).
* :meth:`Limiter.settle` then records the difference between the actual
  exposure and the reservation (refunding the unused part), so a reservation
  of ``first: 100`` that returned 3 records costs 3.
* :meth:`Limiter.release` gives a reservation back when its request failed,
  or what a settle counted when the response was dropped afterwards.

Fail modes: when storage is down, the operation raises
:class:`~fieldguard.errors.StorageError` unless the caller is authenticated
and every quota involved is configured ``fail: allow`` (personal-data quotas
can never be); then the result is flagged ``degraded`` and nothing is counted.
Anonymous callers always fail closed.

Example:
    >>> catalogue = {"quotas": {"records_day": {"measure": "records", "window_seconds": 86400}},
    ...              "scopes": ["subject", "app", "ip", "prefix"]}
    >>> limiter = Limiter.from_url("memory://", quotas=catalogue)
    >>> keys = QuotaKeys.from_request(subject_id="u7", ip="203.0.113.9")
    >>> charges = [{"quota": "records_day", "scope": "subject", "key": "u7", "limit": 600,
    ...             "measure": "records", "window_seconds": 86400}]
    >>> limiter.charge(charges, Exposure(records=3), keys=keys).counters[0].used
    3
    >>> limiter.read(keys).as_input()["usage"]["subject"]
    {'records_day': 3}
    >>> limiter.close()
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fieldguard.errors import MalformedDecision, StorageError
from fieldguard.limits.backend import (
    Action,
    Backend,
    Batch,
    BatchResult,
    CounterOp,
    CounterResult,
    DistinctAdd,
    DistinctCount,
    Op,
    ProbeAdd,
    ProbeRead,
    backend_from_url,
)
from fieldguard.limits.catalogue import Catalogue, FailMode, Quota, Strategy
from fieldguard.limits.keys import QuotaKeys, storage_safe
from fieldguard.limits.model import (
    PLAN_PATH,
    Charge,
    ChargeResult,
    CounterState,
    Exposure,
    Reservation,
    Usage,
    ceil_seconds,
)
from fieldguard.limits.signals import SignalConfig, parse_probe_id, probing_score

ChargeLike = Mapping[str, Any] | Charge


@functools.lru_cache(maxsize=16384)
def counter_key(scope: str, key: str, quota: str) -> str:
    """The logical key of a quota counter: ``{scope:key}:q:quota``."""
    return f"{{{scope}:{storage_safe(key)}}}:q:{storage_safe(quota)}"


@functools.lru_cache(maxsize=16384)
def signal_key(principal: tuple[str, str], name: str) -> str:
    """The logical key of a signal of ``principal``: ``{scope:key}:s:name``."""
    return f"{{{principal[0]}:{storage_safe(principal[1])}}}:s:{name}"


@dataclass(frozen=True)
class _ReadPlan:
    """The ops of a read and where each result goes."""

    ops: tuple[Op, ...]
    slots: tuple[tuple[str, str], ...]  # (scope, quota) per counter op, in order
    quotas: tuple[Quota, ...]


class Limiter:
    """Quota counters and scraping signals for the policy's plan.

    Build it once at startup with :meth:`from_url`; it is thread-safe and
    holds no per-request state.

    Args:
        backend: the counter store.
        catalogue: the parsed quota catalogue.
        signals: windows and thresholds of the behavioural signals.
        clock: seconds since the epoch; stamps moving-window entries and
            signals on Redis (``limits``' memory storage reads ``time.time``).
    """

    def __init__(
        self,
        backend: Backend,
        catalogue: Catalogue,
        *,
        signals: SignalConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.catalogue = catalogue
        self.signals = signals or SignalConfig()
        self.clock = clock
        self._names = self.signals.names()
        # The read ops depend only on the keys: build them once per identity.
        self._read_plan = functools.lru_cache(maxsize=4096)(self._build_read_plan)

    @classmethod
    def from_url(
        cls,
        url: str,
        quotas: Mapping[str, Any],
        fail_modes: Mapping[str, str | FailMode] | None = None,
        *,
        signals: SignalConfig | None = None,
        **options: Any,
    ) -> Limiter:
        """Build a limiter for the storage at ``url``.

        Args:
            url: ``memory://``, ``redis://host:port/db``, ``rediss://…``,
                ``redis+cluster://h:p,h:p``, ``redis+sentinel://h:p/service``.
            quotas: ``data.policy.limits`` (its ``quotas`` and ``scopes``).
            fail_modes: quota → ``deny``/``allow`` overrides of the catalogue.
            signals: signal windows (default :class:`SignalConfig`).
            **options: storage client options (e.g. ``socket_timeout``).

        Raises:
            ConfigurationError: bad URL, missing driver, bad catalogue, or a
                personal-data quota set to fail open.

        Example:
            >>> Limiter.from_url("mysql://x", quotas={"quotas": {}})
            Traceback (most recent call last):
            ...
            fieldguard.errors.ConfigurationError: catalogue 'quotas' must be a non-empty mapping
        """
        catalogue = Catalogue.from_mapping(quotas, fail_modes)
        return cls(backend_from_url(url, **options), catalogue, signals=signals)

    # -- read ----------------------------------------------------------

    def _build_read_plan(self, keys: QuotaKeys) -> _ReadPlan:
        ops: list[Op] = []
        slots: list[tuple[str, str]] = []
        quotas: list[Quota] = []
        for scope in self.catalogue.scopes:
            key = keys.for_scope(scope)
            if key is None:
                continue
            for quota in self.catalogue.quotas.values():
                if scope not in quota.scopes:
                    continue
                ops.append(
                    CounterOp(
                        counter_key(scope, key, quota.name),
                        quota.strategy,
                        Action.READ,
                        quota.window_seconds,
                    )
                )
                slots.append((scope, quota.name))
                quotas.append(quota)
        principal = keys.principal
        if principal is not None:
            cfg = self.signals
            ops += [
                DistinctCount(
                    signal_key(principal, "subjects"),
                    cfg.distinct_window_seconds,
                    cfg.distinct_buckets,
                ),
                self._signal_counter(
                    principal, "records", cfg.records_window_seconds, Action.READ, 0
                ),
                self._signal_counter(
                    principal, "requests", cfg.rate_window_seconds, Action.READ, 0
                ),
                ProbeRead(signal_key(principal, "probe"), cfg.probe_window_seconds),
            ]
        return _ReadPlan(tuple(ops), tuple(slots), tuple(quotas))

    @staticmethod
    def _signal_counter(
        principal: tuple[str, str], name: str, window: int, action: Action, amount: int
    ) -> CounterOp:
        # Signals have no limit, so an O(1) sliding window counter fits.
        return CounterOp(
            signal_key(principal, name), Strategy.SLIDING_WINDOW_COUNTER, action, window, 0, amount
        )

    def _usage(self, plan: _ReadPlan, result: BatchResult) -> Usage:
        counters: dict[str, dict[str, int]] = {}
        n = len(plan.slots)
        for (scope, quota), res in zip(plan.slots, result.results[:n], strict=True):
            used = res.used if isinstance(res, CounterResult) else 0
            if used:
                counters.setdefault(scope, {})[quota] = used
        signals: dict[str, float | int | bool] = {self._names["probe"]: 0.0}
        rest = result.results[n:]
        if rest:
            distinct, records, requests, probes = rest
            cfg = self.signals
            ids = probes if isinstance(probes, tuple) else ()
            signals.update(
                {
                    self._names["probe"]: probing_score(
                        ids, cfg.probe_delta, cfg.probe_min_samples
                    ),
                    self._names["distinct"]: distinct if isinstance(distinct, int) else 0,
                    self._names["records"]: records.used
                    if isinstance(records, CounterResult)
                    else 0,
                    self._names["rate"]: requests.used
                    if isinstance(requests, CounterResult)
                    else 0,
                    self._names["probed"]: len(ids),
                }
            )
        return Usage(counters=counters, signals=signals, scopes=self.catalogue.scopes)

    def _read_failed(self, keys: QuotaKeys, plan: _ReadPlan, exc: StorageError) -> Usage:
        if keys.anonymous or any(q.fail is FailMode.DENY for q in plan.quotas):
            raise exc
        return Usage(
            counters={}, signals={"degraded": True}, degraded=True, scopes=self.catalogue.scopes
        )

    def read(self, keys: QuotaKeys) -> Usage:
        """Usage of every catalogue quota under every scope of ``keys``, and the
        principal's signals, in one storage round trip.

        Raises:
            StorageError: storage is down and a quota fails closed (or the
                caller is anonymous).

        Example:
            >>> lim = Limiter.from_url("memory://", quotas={
            ...     "quotas": {"req_min": {"measure": "requests", "window_seconds": 60}}})
            >>> lim.read(QuotaKeys.from_request(ip="198.51.100.4")).as_input()["signals"]
            {'enumeration_score': 0.0, 'distinct_subjects_day': 0, 'records_day': 0, \
'request_rate_minute': 0, 'probed_ids': 0}
            >>> lim.close()
        """
        plan = self._read_plan(keys)
        try:
            result = self.backend.execute(Batch(self.clock(), plan.ops))
        except StorageError as exc:
            return self._read_failed(keys, plan, exc)
        return self._usage(plan, result)

    async def aread(self, keys: QuotaKeys) -> Usage:
        """Async :meth:`read`."""
        plan = self._read_plan(keys)
        try:
            result = await self.backend.aexecute(Batch(self.clock(), plan.ops))
        except StorageError as exc:
            return self._read_failed(keys, plan, exc)
        return self._usage(plan, result)

    def read_counter(self, charge: ChargeLike) -> int:
        """The amount used in one charge's counter (diagnostics, tests).

        Raises:
            MalformedDecision: the charge does not fit the catalogue.
            StorageError: storage is down.
        """
        ((c, q),) = self._parse([charge])
        op = CounterOp(
            counter_key(c.scope, c.key, q.name), q.strategy, Action.READ, q.window_seconds
        )
        result = self.backend.execute(Batch(self.clock(), (op,))).results[0]
        return result.used if isinstance(result, CounterResult) else 0

    # -- charge --------------------------------------------------------

    def _parse(self, charges: Sequence[ChargeLike]) -> tuple[tuple[Charge, Quota], ...]:
        parsed = []
        for raw in charges:
            charge = Charge.from_mapping(raw)
            quota = self.catalogue.quotas.get(charge.quota)
            if quota is None:
                raise MalformedDecision(PLAN_PATH, f"charge for unknown quota {charge.quota!r}")
            if charge.scope not in quota.scopes:
                raise MalformedDecision(
                    PLAN_PATH, f"quota {quota.name!r} is not counted under {charge.scope!r}"
                )
            if (charge.measure, charge.window_seconds) != (quota.measure, quota.window_seconds):
                raise MalformedDecision(
                    PLAN_PATH,
                    f"charge for {quota.name!r} says {charge.measure}/{charge.window_seconds}s, "
                    f"the catalogue {quota.measure}/{quota.window_seconds}s",
                )
            parsed.append((charge, quota))
        return tuple(parsed)

    @staticmethod
    def _principal(
        keys: QuotaKeys | None, charges: tuple[tuple[Charge, Quota], ...]
    ) -> tuple[str, str] | None:
        if keys is not None:
            return keys.principal
        by_scope = {c.scope: c.key for c, _ in charges}
        for scope in ("subject", "ip"):
            if scope in by_scope:
                return (scope, by_scope[scope])
        return None

    def _signal_ops(self, principal: tuple[str, str] | None, exposure: Exposure) -> list[Op]:
        if principal is None:
            return []
        cfg = self.signals
        ops: list[Op] = [
            self._signal_counter(
                principal, "records", cfg.records_window_seconds, Action.ADD, exposure.records
            ),
            self._signal_counter(
                principal, "requests", cfg.rate_window_seconds, Action.ADD, exposure.requests
            ),
        ]
        if exposure.subjects:
            ops.append(
                DistinctAdd(
                    signal_key(principal, "subjects"),
                    tuple(sorted(exposure.subjects)),
                    cfg.distinct_window_seconds,
                    cfg.distinct_buckets,
                )
            )
        probed = tuple(dict.fromkeys(i for i in exposure.probed_ids if parse_probe_id(i)))
        if probed:
            ops.append(
                ProbeAdd(
                    signal_key(principal, "probe"),
                    probed[-cfg.probe_max_ids :],
                    cfg.probe_window_seconds,
                    cfg.probe_max_ids,
                )
            )
        return ops

    @staticmethod
    def _fails_open(keys: QuotaKeys | None, charges: tuple[tuple[Charge, Quota], ...]) -> bool:
        anonymous = (
            keys.anonymous
            if keys is not None
            else not any(c.scope == "subject" for c, _ in charges)
        )
        return not anonymous and all(q.fail is FailMode.ALLOW for _, q in charges)

    @staticmethod
    def _states(
        charges: tuple[tuple[Charge, Quota], ...],
        amounts: Sequence[int],
        results: Sequence[object],
        admitted: bool,
    ) -> tuple[CounterState, ...]:
        states = []
        for (charge, _), amount, res in zip(charges, amounts, results, strict=False):
            if not isinstance(res, CounterResult):
                continue
            states.append(
                CounterState(
                    charge, amount if admitted else 0, res.used, ceil_seconds(res.retry_ms / 1000)
                )
            )
        return tuple(states)

    def _charge_batch(
        self,
        charges: tuple[tuple[Charge, Quota], ...],
        exposure: Exposure,
        keys: QuotaKeys | None,
    ) -> tuple[Batch, list[int]]:
        amounts = [exposure.amount(q.measure) for _, q in charges]
        ops: list[Op] = [
            CounterOp(
                counter_key(c.scope, c.key, q.name),
                q.strategy,
                Action.ADD,
                q.window_seconds,
                c.limit,
                amount,
            )
            for (c, q), amount in zip(charges, amounts, strict=True)
        ]
        ops += self._signal_ops(self._principal(keys, charges), exposure)
        return Batch(self.clock(), tuple(ops)), amounts

    def charge(
        self,
        charges: Sequence[ChargeLike],
        exposure: Exposure,
        *,
        keys: QuotaKeys | None = None,
    ) -> ChargeResult:
        """Record what a request exposed against the plan's ``charges``.

        Unconditional: the data has left already, so every counter is
        incremented by the exposure's amount of its measure even past its
        limit (a moving window then holds ``limit`` entries: exhausted).
        Signals (records, request rate, distinct subjects, probed ids) are
        recorded for ``keys.principal`` — pass ``keys``; without it the
        principal is taken from the subject (else ip) charge.

        Raises:
            MalformedDecision: a charge does not fit the contract/catalogue.
            StorageError: storage is down and a charged quota fails closed.

        Example:
            >>> lim = Limiter.from_url("memory://", quotas={
            ...     "quotas": {"cost_hour": {"measure": "cost", "window_seconds": 3600}}})
            >>> res = lim.charge([{"quota": "cost_hour", "scope": "app", "key": "partner-x",
            ...                    "limit": 100, "measure": "cost", "window_seconds": 3600}],
            ...                  Exposure(cost=120))
            >>> (res.counters[0].used, res.counters[0].exhausted, res.retry_after > 0)
            (100, True, True)
            >>> lim.close()
        """
        parsed = self._parse(charges)
        batch, amounts = self._charge_batch(parsed, exposure, keys)
        try:
            result = self.backend.execute(batch)
        except StorageError:
            if self._fails_open(keys, parsed):
                return ChargeResult(degraded=True)
            raise
        return ChargeResult(self._states(parsed, amounts, result.results, True))

    async def acharge(
        self,
        charges: Sequence[ChargeLike],
        exposure: Exposure,
        *,
        keys: QuotaKeys | None = None,
    ) -> ChargeResult:
        """Async :meth:`charge`."""
        parsed = self._parse(charges)
        batch, amounts = self._charge_batch(parsed, exposure, keys)
        try:
            result = await self.backend.aexecute(batch)
        except StorageError:
            if self._fails_open(keys, parsed):
                return ChargeResult(degraded=True)
            raise
        return ChargeResult(self._states(parsed, amounts, result.results, True))

    # -- admit / settle -------------------------------------------------

    @staticmethod
    def _amounts(
        charges: tuple[tuple[Charge, Quota], ...], amount: int | Exposure | Mapping[str, int]
    ) -> list[int]:
        if isinstance(amount, Exposure):
            return [amount.amount(q.measure) for _, q in charges]
        if isinstance(amount, Mapping):
            # by quota name first, then by measure; unnamed charges reserve 0
            return [int(amount.get(c.quota, amount.get(q.measure, 0))) for c, q in charges]
        if amount < 0:
            raise ValueError("amount must be >= 0")
        return [amount] * len(charges)

    def _admit_batch(self, charges: tuple[tuple[Charge, Quota], ...], amounts: list[int]) -> Batch:
        return Batch(
            self.clock(),
            tuple(
                CounterOp(
                    counter_key(c.scope, c.key, q.name),
                    q.strategy,
                    Action.CHECK,
                    q.window_seconds,
                    c.limit,
                    a,
                )
                for (c, q), a in zip(charges, amounts, strict=True)
            ),
        )

    def _reservation(
        self, parsed: tuple[tuple[Charge, Quota], ...], amounts: list[int], result: BatchResult
    ) -> Reservation:
        states = self._states(parsed, amounts, result.results, result.admitted)
        tokens = [r.token if isinstance(r, CounterResult) else "" for r in result.results]
        return _Reserved(result.admitted, states, "|".join(tokens), False, parsed, tuple(amounts))

    def admit(
        self,
        charges: Sequence[ChargeLike],
        amount: int | Exposure | Mapping[str, int] = 1,
        *,
        keys: QuotaKeys | None = None,
    ) -> Reservation:
        """Atomically reserve ``amount`` on every charge — all or nothing.

        Each counter must have room for its amount (at least one unit: an
        exhausted quota refuses even a zero estimate); otherwise nothing is
        written and the reservation is refused with ``retry_after``. Call
        :meth:`settle` after the response to charge the actual exposure.

        Args:
            charges: the plan's charges.
            amount: per-charge reservation: one int for all, an estimated
                :class:`Exposure` (its amount of each charge's measure), or a
                mapping quota-name-or-measure → amount.
            keys: the request's keys (decides anonymity for fail modes).

        Raises:
            MalformedDecision: a charge does not fit the contract/catalogue.
            StorageError: storage is down and a quota fails closed.

        Example:
            >>> lim = Limiter.from_url("memory://", quotas={
            ...     "quotas": {"req_min": {"measure": "requests", "window_seconds": 60}}})
            >>> c = [{"quota": "req_min", "scope": "ip", "key": "198.51.100.4", "limit": 2,
            ...       "measure": "requests", "window_seconds": 60}]
            >>> [lim.admit(c).admitted for _ in range(3)]
            [True, True, False]
            >>> lim.close()
        """
        parsed = self._parse(charges)
        amounts = self._amounts(parsed, amount)
        try:
            result = self.backend.execute(self._admit_batch(parsed, amounts))
        except StorageError:
            if self._fails_open(keys, parsed):
                return _Reserved(True, (), "", True, parsed, tuple(0 for _ in amounts))
            raise
        return self._reservation(parsed, amounts, result)

    async def aadmit(
        self,
        charges: Sequence[ChargeLike],
        amount: int | Exposure | Mapping[str, int] = 1,
        *,
        keys: QuotaKeys | None = None,
    ) -> Reservation:
        """Async :meth:`admit`."""
        parsed = self._parse(charges)
        amounts = self._amounts(parsed, amount)
        try:
            result = await self.backend.aexecute(self._admit_batch(parsed, amounts))
        except StorageError:
            if self._fails_open(keys, parsed):
                return _Reserved(True, (), "", True, parsed, tuple(0 for _ in amounts))
            raise
        return self._reservation(parsed, amounts, result)

    def _settle_batch(
        self,
        reservation: Reservation,
        exposure: Exposure,
        keys: QuotaKeys | None,
        signals: bool = True,
    ) -> _Settlement:
        if not isinstance(reservation, _Reserved):
            raise TypeError("settle() takes a Reservation returned by admit() or settle()")
        parsed = reservation.parsed
        reserved = reservation.amounts if reservation.admitted else tuple(0 for _ in parsed)
        tokens = reservation.token.split("|") if reservation.token else [""] * len(parsed)
        ops: list[Op] = []
        slots: list[int] = []
        actual = [exposure.amount(q.measure) for _, q in parsed]
        for (c, q), got, held, token in zip(parsed, actual, reserved, tokens, strict=True):
            key = counter_key(c.scope, c.key, q.name)
            if q.strategy is Strategy.MOVING_WINDOW and 0 < held < got:
                # More than reserved: give the reserved entries back and write
                # the whole exposure anew, so that what stays counted carries
                # one token (and can itself be refunded exactly).
                ops.append(CounterOp(key, q.strategy, Action.SUB, q.window_seconds, c.limit,
                                     held, token))
                ops.append(CounterOp(key, q.strategy, Action.ADD, q.window_seconds, c.limit,
                                     got))
            else:
                delta = got - held
                action = Action.ADD if delta >= 0 else Action.SUB
                ops.append(CounterOp(key, q.strategy, action, q.window_seconds, c.limit,
                                     abs(delta), token))
            slots.append(len(ops) - 1)
        if signals:
            ops += self._signal_ops(self._principal(keys, parsed), exposure)
        return _Settlement(Batch(self.clock(), tuple(ops)), parsed, actual, slots, tokens)

    def _settled(self, plan: _Settlement, result: BatchResult) -> ChargeResult:
        results = [result.results[i] for i in plan.slots]
        states = self._states(plan.parsed, plan.actual, results, True)
        held_tokens = []
        for i, token in zip(plan.slots, plan.tokens, strict=True):
            op, res = plan.batch.ops[i], result.results[i]
            wrote = isinstance(op, CounterOp) and op.action is Action.ADD and op.amount > 0
            fresh = res.token if wrote and isinstance(res, CounterResult) else ""
            held_tokens.append(fresh or token)
        held = _Reserved(True, states, "|".join(held_tokens), False, plan.parsed,
                         tuple(plan.actual))
        return ChargeResult(states, held=held)

    def settle(
        self, reservation: Reservation, exposure: Exposure, *, keys: QuotaKeys | None = None
    ) -> ChargeResult:
        """Charge the actual exposure of a reserved request, in one round trip.

        Counters get ``actual - reserved`` more (unconditionally), or the
        unused part of the reservation back; signals are recorded as in
        :meth:`charge`. Settling a refused reservation charges the full
        exposure. ``settle(reservation, Exposure(requests=0))`` releases a
        reservation whose request failed (see :meth:`release`). The result's
        ``held`` is what the counters now hold for the request, itself a
        reservation: settle (or release) it to adjust the charge again.

        Raises:
            StorageError: storage is down and a charged quota fails closed.

        Example (reserve a page of 100, release 3, then take those 3 back):
            >>> lim = Limiter.from_url("memory://", quotas={
            ...     "quotas": {"records_day": {"measure": "records", "window_seconds": 86400}}})
            >>> c = [{"quota": "records_day", "scope": "subject", "key": "u7", "limit": 600,
            ...       "measure": "records", "window_seconds": 86400}]
            >>> reservation = lim.admit(c, {"records": 100})
            >>> reservation.counters[0].used
            100
            >>> settled = lim.settle(reservation, Exposure(records=3))
            >>> settled.counters[0].used
            3
            >>> lim.release(settled.held).counters[0].used
            0
            >>> lim.close()
        """
        return self._run_settle(self._settle_batch(reservation, exposure, keys), reservation, keys)

    async def asettle(
        self, reservation: Reservation, exposure: Exposure, *, keys: QuotaKeys | None = None
    ) -> ChargeResult:
        """Async :meth:`settle`."""
        return await self._arun_settle(self._settle_batch(reservation, exposure, keys),
                                       reservation, keys)

    def release(
        self, reservation: Reservation, *, keys: QuotaKeys | None = None
    ) -> ChargeResult:
        """Give back everything ``reservation`` holds, in one round trip: the
        request failed and nothing of it left the API.

        ``reservation`` is what :meth:`admit` returned (not yet settled) or
        the ``held`` of a :meth:`settle` result (the response was dropped
        after the charge, e.g. because the audit sink failed). Like
        ``settle(reservation, Exposure(requests=0))`` but without touching
        the behavioural signals. A refused reservation holds nothing.

        Raises:
            StorageError: storage is down and a quota fails closed; the
                reservation then stays counted until its window ends.
        """
        plan = self._settle_batch(reservation, Exposure(requests=0), keys, signals=False)
        return self._run_settle(plan, reservation, keys)

    async def arelease(
        self, reservation: Reservation, *, keys: QuotaKeys | None = None
    ) -> ChargeResult:
        """Async :meth:`release`."""
        plan = self._settle_batch(reservation, Exposure(requests=0), keys, signals=False)
        return await self._arun_settle(plan, reservation, keys)

    def _run_settle(self, plan: _Settlement, reservation: Reservation,
                    keys: QuotaKeys | None) -> ChargeResult:
        try:
            result = self.backend.execute(plan.batch)
        except StorageError:
            if reservation.degraded or self._fails_open(keys, plan.parsed):
                return ChargeResult(degraded=True)
            raise
        return self._settled(plan, result)

    async def _arun_settle(self, plan: _Settlement, reservation: Reservation,
                           keys: QuotaKeys | None) -> ChargeResult:
        try:
            result = await self.backend.aexecute(plan.batch)
        except StorageError:
            if reservation.degraded or self._fails_open(keys, plan.parsed):
                return ChargeResult(degraded=True)
            raise
        return self._settled(plan, result)

    # -- lifecycle -----------------------------------------------------

    def reset(self) -> None:
        """Delete every counter and signal (tests, operators' "forgive all")."""
        self.backend.reset()

    async def areset(self) -> None:
        """Async :meth:`reset`."""
        await self.backend.areset()

    def close(self) -> None:
        """Release the storage's connections."""
        self.backend.close()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        await self.backend.aclose()

    def __enter__(self) -> Limiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class _Reserved(Reservation):
    """A reservation with what :meth:`Limiter.settle` needs to adjust it."""

    parsed: tuple[tuple[Charge, Quota], ...] = ()
    amounts: tuple[int, ...] = ()


@dataclass(frozen=True)
class _Settlement:
    """A settle batch and how its results map back to the charges."""

    batch: Batch
    parsed: tuple[tuple[Charge, Quota], ...]
    actual: list[int]
    slots: list[int]  # per charge: the op whose result is the counter's final state
    tokens: list[str]  # per charge: the reservation's token
