"""In-process backend: :class:`limits.storage.MemoryStorage` behind one lock.

Counting is :mod:`limits`' own: moving windows through
``MemoryStorage.get_moving_window`` / ``acquire_entry`` and sliding window
counters through ``get_sliding_window`` / ``acquire_sliding_window_entry`` /
``incr`` / ``decr``. ``limits`` locks per key; a batch must be atomic across
keys (all-or-nothing admission), so the backend holds one lock for a batch.

Two things ``limits`` has no API for, done on its ``events`` lists under its
per-key lock: trimming a moving window to ``limit`` entries after an
unconditional charge (keeps memory bounded, like the Redis ``LTRIM``), and
refunding the entries of a reservation.

Distinct subjects are exact here (a ``{subject: last_seen}`` map per
principal), unlike the HyperLogLog estimate of the Redis backend.

Example:
    >>> from fieldguard.limits.backend import Batch, CounterOp, Action
    >>> from fieldguard.limits.catalogue import Strategy
    >>> b = MemoryBackend()
    >>> add = CounterOp("{subject:u7}:q:records_day", Strategy.MOVING_WINDOW, Action.ADD,
    ...                 window=86400, limit=600, amount=5)
    >>> b.execute(Batch(now=0.0, ops=(add,))).results[0].used
    5
    >>> b.close()
"""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING, Any

from fieldguard.limits.backend import (
    Action,
    Batch,
    BatchResult,
    CounterOp,
    CounterResult,
    DistinctAdd,
    DistinctCount,
    Op,
    ProbeAdd,
    Result,
    sliding_retry_ms,
    sliding_used,
)
from fieldguard.limits.catalogue import Strategy

if TYPE_CHECKING:
    from limits.storage import MemoryStorage


class MemoryBackend:
    """Counters in this process only (tests, single-process deployments).

    Args:
        storage: a ``limits`` MemoryStorage to share (default: a new one).
    """

    name = "memory"

    def __init__(self, storage: MemoryStorage | None = None) -> None:
        from limits.storage import MemoryStorage

        self.storage: Any = storage if storage is not None else MemoryStorage()
        self._lock = threading.Lock()
        # principal key -> {member: last seen}; exact sets, pruned on access.
        self._distinct: dict[str, dict[str, float]] = {}
        self._probes: dict[str, dict[str, float]] = {}

    # -- protocol ------------------------------------------------------

    def execute(self, batch: Batch) -> BatchResult:
        """Run ``batch`` atomically (one lock for the whole batch)."""
        with self._lock:
            if batch.atomic:
                checks: list[Result] = []
                refused = False
                for op in batch.ops:
                    if isinstance(op, CounterOp) and op.action is Action.CHECK:
                        result = self._check(op)
                        refused = refused or not result.ok
                        checks.append(result)
                    else:
                        checks.append(None)
                if refused:
                    return BatchResult(False, tuple(checks))
            return BatchResult(True, tuple(self._apply(op, batch.now) for op in batch.ops))

    async def aexecute(self, batch: Batch) -> BatchResult:
        """Same as :meth:`execute`: no I/O, and the lock is never held across
        an ``await``, so calling it from the event loop is safe."""
        return self.execute(batch)

    def reset(self) -> None:
        """Forget every counter and signal."""
        with self._lock:
            self.storage.reset()
            self._distinct.clear()
            self._probes.clear()

    async def areset(self) -> None:
        """Async :meth:`reset`."""
        self.reset()

    def close(self) -> None:
        """Stop ``limits``' expiry timer thread."""
        timer = getattr(self.storage, "timer", None)
        if timer is not None:
            timer.cancel()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        self.close()

    # -- counters ------------------------------------------------------

    def _moving(self, op: CounterOp, need: int) -> CounterResult:
        now = time.time()
        start, count = self.storage.get_moving_window(op.key, max(op.limit, 1), op.window)
        retry = 0
        if op.action is not Action.READ and count + need > op.limit:
            events = self.storage.events.get(op.key, [])
            index = op.limit - need
            if index < 0:
                retry = op.window * 1000
            elif index < len(events) and events[index].atime >= now - op.window:
                retry = max(0, math.ceil((events[index].atime + op.window - now) * 1000))
            else:
                retry = max(0, math.ceil((start + op.window - now) * 1000))
        return CounterResult(count + need <= op.limit, int(count), retry)

    def _sliding(self, op: CounterOp, need: int) -> CounterResult:
        prev, prev_ttl, cur, cur_ttl = self.storage.get_sliding_window(op.key, op.window)
        prev_ms, cur_ms = prev_ttl * 1000, cur_ttl * 1000
        used = sliding_used(prev, prev_ms, cur, op.window)
        retry = 0
        if op.action is not Action.READ:
            retry = sliding_retry_ms(prev, prev_ms, cur, cur_ms, op.window, op.limit, need)
        return CounterResult(used + need <= op.limit, used, retry)

    def _state(self, op: CounterOp, need: int) -> CounterResult:
        if op.strategy is Strategy.MOVING_WINDOW:
            return self._moving(op, need)
        return self._sliding(op, need)

    def _check(self, op: CounterOp) -> CounterResult:
        # An estimate of 0 still needs one unit of room: an exhausted quota
        # refuses even a request expected to expose nothing.
        return self._state(op, max(op.amount, 1))

    def _apply_counter(self, op: CounterOp) -> CounterResult:
        token = ""
        if op.amount > 0 and op.action in (Action.ADD, Action.CHECK):
            if op.strategy is Strategy.MOVING_WINDOW:
                token = self._moving_add(op)
            else:
                self._sliding_add(op)
        elif op.amount > 0 and op.action is Action.SUB:
            if op.strategy is Strategy.MOVING_WINDOW:
                self._moving_refund(op)
            else:
                self._sliding_refund(op)
        state = self._state(op, 1)
        if op.action is Action.READ:
            return CounterResult(True, state.used)
        return CounterResult(True, state.used, state.retry_ms, token)

    def _moving_add(self, op: CounterOp) -> str:
        cap = max(op.limit, 1)
        amount = min(op.amount, cap)
        if op.action is Action.CHECK:
            # Checked under the batch lock already; limits' acquire_entry is
            # the same test (entry at index limit - amount outside the window).
            limit = op.limit
        else:
            # acquire_entry refuses when the window is full; an unconditional
            # charge records what was exposed anyway, so ask with a limit that
            # fits (the window is trimmed back to ``limit`` right after).
            _, count = self.storage.get_moving_window(op.key, cap, op.window)
            limit = int(count) + amount
        self.storage.acquire_entry(op.key, limit, op.window, amount=amount)
        with self.storage.locks[op.key]:
            events = self.storage.events.get(op.key, [])
            del events[cap:]
            return repr(events[0].atime) if events else ""

    def _moving_refund(self, op: CounterOp) -> None:
        # Remove up to ``amount`` entries stamped ``token``. One acquire
        # inserts its entries as one run at the front (newest first), so the
        # scan stops at the run: a refund costs the entries newer than the
        # reservation, not the whole window (a settle refunds on every request).
        try:
            stamp = float(op.token)  # repr() of a float round-trips exactly
        except ValueError:
            return
        with self.storage.locks[op.key]:
            events = self.storage.events.get(op.key, [])
            left, i = op.amount, 0
            while left and i < len(events):
                if events[i].atime != stamp:
                    i += 1
                    continue
                j = i + 1
                while j < len(events) and j - i < left and events[j].atime == stamp:
                    j += 1
                del events[i:j]
                left -= j - i

    def _sliding_add(self, op: CounterOp) -> None:
        if op.action is Action.CHECK:
            # Checked under the batch lock already; limits re-checks it.
            self.storage.acquire_sliding_window_entry(op.key, op.limit, op.window, op.amount)
            return
        _, current = self.storage.sliding_window_keys(op.key, op.window, time.time())
        self.storage.incr(current, 2 * op.window, amount=op.amount)

    def _sliding_refund(self, op: CounterOp) -> None:
        previous, current = self.storage.sliding_window_keys(op.key, op.window, time.time())
        take = min(op.amount, self.storage.get(current))
        if take:
            self.storage.decr(current, take)
        rest = min(op.amount - take, self.storage.get(previous))
        if rest:
            self.storage.decr(previous, rest)

    # -- signals -------------------------------------------------------

    @staticmethod
    def _prune(seen: dict[str, float], horizon: float) -> None:
        for member in [m for m, t in seen.items() if t < horizon]:
            del seen[member]

    def _apply(self, op: Op, now: float) -> Result:
        if isinstance(op, CounterOp):
            return self._apply_counter(op)
        if isinstance(op, DistinctAdd):
            seen = self._distinct.setdefault(op.key, {})
            self._prune(seen, now - op.window)
            for member in op.members:
                seen[member] = now
            return len(seen)
        if isinstance(op, DistinctCount):
            seen = self._distinct.get(op.key, {})
            self._prune(seen, now - op.window)
            return len(seen)
        if isinstance(op, ProbeAdd):
            probes = self._probes.setdefault(op.key, {})
            for member in op.members:
                probes.pop(member, None)  # re-insert: dict order is recency order
                probes[member] = now
            self._prune(probes, now - op.window)
            while len(probes) > op.max_ids:
                del probes[next(iter(probes))]
            return len(probes)
        probes = self._probes.get(op.key, {})
        self._prune(probes, now - op.window)
        return tuple(probes)
