"""The storage seam: batched operations and the protocol backends implement.

The limiter never talks to storage one counter at a time. It builds one
:class:`Batch` per request phase (read, charge, admit, settle) and hands it to a
:class:`Backend`, which must execute the whole batch in **one round trip** on
a networked store and **atomically** with respect to other batches:

* a :class:`CounterOp` with ``CHECK`` makes the batch all-or-nothing: every
  ``CHECK`` counter must have room for its amount, otherwise nothing in the
  batch is written;
* all other ops are applied in order.

Backends are chosen by URL scheme (:func:`backend_from_url`); the Redis client
is imported only when a ``redis…://`` URL is used.

Example:
    >>> b = backend_from_url("memory://")
    >>> op = CounterOp("{ip:203.0.113.9}:q:req_min", Strategy.MOVING_WINDOW, Action.CHECK,
    ...                window=60, limit=2, amount=1)
    >>> [b.execute(Batch(now=0.0, ops=(op,))).admitted for _ in range(3)]
    [True, True, False]
    >>> b.close()
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from fieldguard.errors import ConfigurationError
from fieldguard.limits.catalogue import Strategy


class Action(enum.Enum):
    """What a :class:`CounterOp` does."""

    READ = "read"  # report the window, write nothing
    CHECK = "check"  # all-or-nothing admission: add only if every CHECK fits
    ADD = "add"  # unconditional: record what was actually exposed
    SUB = "sub"  # refund part of an earlier CHECK/ADD


@dataclass(frozen=True)
class CounterOp:
    """One quota counter operation.

    Attributes:
        key: the logical key, ``{<scope>:<key>}:q:<quota>`` (the backend adds
            its ``fieldguard:`` prefix; the braces are the Redis Cluster hash
            tag, so every counter of one identity lives on one shard).
        strategy: moving window or sliding window counter.
        action: see :class:`Action`.
        window: window length in seconds.
        limit: the quota limit (0 for reads).
        amount: units to add, check or refund.
        token: for ``SUB`` on a moving window, the entry stamp to remove.
    """

    key: str
    strategy: Strategy
    action: Action
    window: int
    limit: int = 0
    amount: int = 0
    token: str = ""


@dataclass(frozen=True)
class DistinctAdd:
    """Add members to the principal's distinct-subject set for ``window``."""

    key: str
    members: tuple[str, ...]
    window: int
    buckets: int


@dataclass(frozen=True)
class DistinctCount:
    """Count the distinct members added to ``key`` within ``window``."""

    key: str
    window: int
    buckets: int


@dataclass(frozen=True)
class ProbeAdd:
    """Remember probed ids (newest ``max_ids`` within ``window``)."""

    key: str
    members: tuple[str, ...]
    window: int
    max_ids: int


@dataclass(frozen=True)
class ProbeRead:
    """The probed ids remembered for ``key`` within ``window``."""

    key: str
    window: int


Op = CounterOp | DistinctAdd | DistinctCount | ProbeAdd | ProbeRead


@dataclass(frozen=True)
class CounterResult:
    """A counter after an op.

    Attributes:
        ok: False only for a ``CHECK`` that did not fit.
        used: amount used in the window.
        retry_ms: milliseconds until the amount (``CHECK``) or one more unit
            (others) fits; 0 when it fits now or for ``READ``.
        token: for moving-window ``CHECK``/``ADD``, the stamp of the entries
            written (needed to refund them); else ''.
    """

    ok: bool
    used: int
    retry_ms: int = 0
    token: str = ""


Result = CounterResult | int | tuple[str, ...] | None


@dataclass(frozen=True)
class Batch:
    """Operations executed in one round trip.

    Attributes:
        now: the timestamp (seconds since the epoch) used for new entries.
        ops: the operations, in order.
    """

    now: float
    ops: tuple[Op, ...]

    @property
    def atomic(self) -> bool:
        """True when the batch contains a CHECK (all-or-nothing admission)."""
        return any(isinstance(o, CounterOp) and o.action is Action.CHECK for o in self.ops)


@dataclass(frozen=True)
class BatchResult:
    """Results aligned with :attr:`Batch.ops`.

    Attributes:
        admitted: False when a CHECK did not fit; then only the CHECK ops have
            results (the rest are None) and nothing was written.
        results: one result per op.
    """

    admitted: bool
    results: tuple[Result, ...]


@runtime_checkable
class Backend(Protocol):
    """What a counter store provides (sync and async twins).

    Implementations raise :class:`fieldguard.errors.StorageError` (with the
    driver's error as ``__cause__``) and nothing else for storage failures.
    """

    name: str

    def execute(self, batch: Batch) -> BatchResult:
        """Run ``batch`` in one round trip, atomically."""
        ...

    async def aexecute(self, batch: Batch) -> BatchResult:
        """Async :meth:`execute`."""
        ...

    def reset(self) -> None:
        """Delete every fieldguard counter and signal in this store."""
        ...

    async def areset(self) -> None:
        """Async :meth:`reset`."""
        ...

    def close(self) -> None:
        """Release connections (the backend may not be used afterwards)."""
        ...

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        ...


def sliding_used(prev: int, prev_ttl_ms: float, cur: int, window: int) -> int:
    """Weighted count of a sliding window counter, as :mod:`limits` computes it.

    ``prev x prev_ttl / window + cur``, rounded down: the previous window's
    count weighted by how much of it still overlaps the sliding window.
    """
    return math.floor(prev * prev_ttl_ms / (window * 1000.0)) + cur


def sliding_retry_ms(
    prev: int, prev_ttl_ms: float, cur: int, cur_ttl_ms: float, window: int, limit: int, need: int
) -> int:
    """Milliseconds until ``need`` more units fit a sliding window counter.

    Two cases: the current window alone leaves no room (wait until it becomes
    the previous window, at ``cur_ttl - window``, and then decays enough), or
    only the previous window's weight is in the way (wait until it decays).
    """
    w = window * 1000.0
    if need > limit:
        return int(2 * w)
    if sliding_used(prev, prev_ttl_ms, cur, window) + need <= limit:
        return 0
    if cur + need > limit:
        shift = max(0.0, cur_ttl_ms - w)
        return math.ceil(shift + w * (1 - (limit - need) / cur))
    return max(0, math.ceil(prev_ttl_ms - (limit - need - cur) * w / prev))


BackendFactory = Any  # Callable[[str, Mapping[str, Any]], Backend]; Any keeps lazy imports simple


def _memory(url: str, options: Mapping[str, Any]) -> Backend:
    from fieldguard.limits.memory import MemoryBackend

    return MemoryBackend(**options)


def _redis(url: str, options: Mapping[str, Any]) -> Backend:
    from fieldguard.limits.redis_store import RedisBackend

    return RedisBackend(url, **options)


_SCHEMES: dict[str, BackendFactory] = {
    "memory": _memory,
    "redis": _redis,
    "rediss": _redis,
    "redis+unix": _redis,
    "redis+cluster": _redis,
    "redis+sentinel": _redis,
}


def backend_from_url(url: str, **options: Any) -> Backend:
    """Build the backend named by ``url``.

    Args:
        url: ``memory://``, ``redis://host:port/db``, ``rediss://…``,
            ``redis+unix:///path``, ``redis+cluster://h1:p1,h2:p2``,
            ``redis+sentinel://host:port/service``.
        **options: backend options (for Redis: client options such as
            ``socket_timeout``).

    Raises:
        ConfigurationError: unknown scheme, or the driver is not installed.
    """
    scheme = urlsplit(url).scheme if "://" in url else ""
    factory = _SCHEMES.get(scheme)
    if factory is None:
        known = ", ".join(f"{s}://" for s in sorted(_SCHEMES))
        raise ConfigurationError(f"unknown quota storage URL {url!r}; use one of {known}")
    backend: Backend = factory(url, options)
    return backend
