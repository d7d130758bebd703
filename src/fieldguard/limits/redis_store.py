"""Redis backend: one Lua script call per batch, on ``limits``' Redis client.

Why not ``limits``' own methods: ``limits`` reads or hits **one** counter per
call (``get_moving_window``, ``acquire_entry``, ``acquire_sliding_window_entry``
each run their own script), so a request with 16 counters and 4 signals would
cost ~20 round trips, and charging N counters all-or-nothing is impossible
(each ``hit`` is atomic on its own only). So this backend builds the storage
through :func:`limits.storage.storage_from_string` (same URL schemes, client
options, Cluster and Sentinel support) and sends each :class:`Batch` to
:data:`BATCH_LUA` through that storage's client: **one** ``EVALSHA`` per
request phase, atomic because Redis runs a script without interleaving.

The script keeps ``limits``' data layout and semantics, so the counters can
be inspected with ``limits`` itself:

* moving window — a list of entry timestamps, newest first, trimmed to
  ``limit`` entries, ``EXPIRE`` = window (as ``acquire_moving_window.lua``); an
  amount fits when the entry at index ``limit - amount`` is older than the
  window (``limits``' test), counting is a binary search (``moving_window.lua``);
* sliding window counter — ``<key>`` (current) and ``<key>/-1`` (previous)
  integers with millisecond TTLs; the current window shifts to the previous
  one when its TTL drops below the window; weighted count
  ``floor(prev x prev_ttl / window) + cur`` (``acquire_sliding_window.lua``).

Keys are ``fieldguard:{<scope>:<key>}:…``. The hash tag keeps one identity's
counters on one Cluster shard; a batch spanning several identities is split
per shard on a Cluster (one call per shard, sequential, with compensating
refunds when a later shard refuses an admission — never over-admits, may
briefly under-admit). Standalone and Sentinel deployments use one call.

Errors: every driver error is re-raised as
:class:`fieldguard.errors.StorageError` (``backend="redis"``). The client
reconnects by itself on the next call once Redis is back; scripts are
re-loaded on ``NOSCRIPT`` after a restart.

Example:
    >>> b = RedisBackend("redis://127.0.0.1:6379/0")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Sequence
from typing import Any

from fieldguard.errors import ConfigurationError, StorageError
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
    ProbeRead,
    Result,
    sliding_retry_ms,
    sliding_used,
)
from fieldguard.limits.catalogue import Strategy

KEY_PREFIX = "fieldguard"

#: The batch script. ARGV: now, nops, then per op its code and arguments;
#: KEYS are consumed in op order. Returns {admitted, result_1, …, result_n}.
BATCH_LUA = r"""
local now = tonumber(ARGV[1])
local stamp = ARGV[1]
local nops = tonumber(ARGV[2])

-- moving window (limits' layout: list of timestamps, newest first)
local function moving_count(key, window)
  local len = redis.call('LLEN', key)
  local target = now - window
  local low, high, found = 0, len - 1, -1
  while low <= high do
    local mid = math.floor((low + high) / 2)
    local v = tonumber(redis.call('LINDEX', key, mid))
    if v and v >= target then found = mid; low = mid + 1 else high = mid - 1 end
  end
  return found + 1
end

local function moving_retry(key, window, limit, need)
  local idx = limit - need
  if idx < 0 then return window * 1000 end
  local v = tonumber(redis.call('LINDEX', key, idx))
  if v and v >= now - window then
    return math.max(0, math.ceil((v + window - now) * 1000))
  end
  return 0
end

local function moving_push(key, window, limit, amount)
  local cap = math.max(limit, 1)
  local n = math.min(amount, cap)
  local entries = {}
  for i = 1, n do entries[i] = stamp end
  for i = 1, #entries, 5000 do
    redis.call('LPUSH', key, unpack(entries, i, math.min(i + 4999, #entries)))
  end
  redis.call('LTRIM', key, 0, cap - 1)
  redis.call('EXPIRE', key, math.ceil(window))
end

-- sliding window counter (limits' layout: current and previous counters)
local function sliding_state(cur, prev, window)
  local w = window * 1000
  local ct = redis.call('PTTL', cur)
  if ct > 0 and ct < w then
    redis.call('RENAME', cur, prev)
    redis.call('SET', cur, 0, 'PX', ct + w)
  end
  local pc = tonumber(redis.call('GET', prev)) or 0
  local pt = redis.call('PTTL', prev)
  if pt < 0 then pt = 0 end
  local cc = tonumber(redis.call('GET', cur)) or 0
  ct = redis.call('PTTL', cur)
  if ct < 0 then ct = 0 end
  return pc, pt, cc, ct
end

local function sliding_add(cur, window, amount)
  if redis.call('EXISTS', cur) == 1 then
    redis.call('INCRBY', cur, amount)
  else
    redis.call('SET', cur, amount, 'PX', window * 2000)
  end
end

local function sliding_sub(cur, prev, amount)
  local cc = tonumber(redis.call('GET', cur)) or 0
  local take = math.min(cc, amount)
  if take > 0 then redis.call('DECRBY', cur, take) end
  local rest = amount - take
  if rest > 0 then
    local pc = tonumber(redis.call('GET', prev)) or 0
    rest = math.min(pc, rest)
    if rest > 0 then redis.call('DECRBY', prev, rest) end
  end
end

-- parse
local ops = {}
local ai, ki = 3, 1
for i = 1, nops do
  local op = {code = ARGV[ai]}
  ai = ai + 1
  if op.code == 'CM' or op.code == 'CS' then
    op.action = ARGV[ai]
    op.window = tonumber(ARGV[ai + 1])
    op.limit = tonumber(ARGV[ai + 2])
    op.amount = tonumber(ARGV[ai + 3])
    op.token = ARGV[ai + 4]
    ai = ai + 5
    op.key = KEYS[ki]; ki = ki + 1
    if op.code == 'CS' then op.prev = KEYS[ki]; ki = ki + 1 end
  elseif op.code == 'DA' or op.code == 'PA' then
    op.window = tonumber(ARGV[ai])
    op.max = tonumber(ARGV[ai + 1])
    local n = tonumber(ARGV[ai + 2])
    ai = ai + 3
    op.members = {}
    for j = 1, n do op.members[j] = ARGV[ai]; ai = ai + 1 end
    op.key = KEYS[ki]; ki = ki + 1
  elseif op.code == 'DC' then
    local n = tonumber(ARGV[ai])
    ai = ai + 1
    op.keys = {}
    for j = 1, n do op.keys[j] = KEYS[ki]; ki = ki + 1 end
  elseif op.code == 'PR' then
    op.window = tonumber(ARGV[ai])
    ai = ai + 1
    op.key = KEYS[ki]; ki = ki + 1
  else
    return redis.error_reply('fieldguard: unknown op ' .. tostring(op.code))
  end
  ops[i] = op
end

local function counter_state(op, need, with_retry)
  if op.code == 'CM' then
    local count = moving_count(op.key, op.window)
    local retry = 0
    if with_retry and count + need > op.limit then
      retry = moving_retry(op.key, op.window, op.limit, need)
    end
    return {(count + need <= op.limit) and 1 or 0, count, retry}
  end
  local pc, pt, cc, ct = sliding_state(op.key, op.prev, op.window)
  local used = math.floor(pc * pt / (op.window * 1000)) + cc
  return {(used + need <= op.limit) and 1 or 0, pc, pt, cc, ct}
end

-- check phase: all-or-nothing admission
local refused = false
local checks = {}
for i, op in ipairs(ops) do
  if (op.code == 'CM' or op.code == 'CS') and op.action == 'check' then
    local st = counter_state(op, math.max(op.amount, 1), true)
    if st[1] == 0 then refused = true end
    checks[i] = st
  else
    checks[i] = 0
  end
end
if refused then
  local out = {0}
  for i = 1, nops do out[i + 1] = checks[i] end
  return out
end

-- apply phase
local out = {1}
for i, op in ipairs(ops) do
  local r
  if op.code == 'CM' or op.code == 'CS' then
    local writes = op.amount > 0 and op.action ~= 'read'
    if writes and (op.action == 'add' or op.action == 'check') then
      if op.code == 'CM' then
        moving_push(op.key, op.window, op.limit, op.amount)
      else
        sliding_state(op.key, op.prev, op.window)
        sliding_add(op.key, op.window, op.amount)
      end
    elseif writes and op.action == 'sub' then
      if op.code == 'CM' then
        redis.call('LREM', op.key, op.amount, op.token)
      else
        sliding_sub(op.key, op.prev, op.amount)
      end
    end
    r = counter_state(op, 1, op.action ~= 'read')
  elseif op.code == 'DA' then
    redis.call('PFADD', op.key, unpack(op.members))
    redis.call('EXPIRE', op.key, math.ceil(op.window))
    r = 1
  elseif op.code == 'DC' then
    r = redis.call('PFCOUNT', unpack(op.keys))
  elseif op.code == 'PA' then
    local args = {}
    for j, m in ipairs(op.members) do
      args[2 * j - 1] = stamp
      args[2 * j] = m
    end
    redis.call('ZADD', op.key, unpack(args))
    redis.call('ZREMRANGEBYSCORE', op.key, '-inf', '(' .. tostring(now - op.window))
    redis.call('ZREMRANGEBYRANK', op.key, 0, -(op.max + 1))
    redis.call('EXPIRE', op.key, math.ceil(op.window))
    r = redis.call('ZCARD', op.key)
  else
    r = redis.call('ZRANGEBYSCORE', op.key, tostring(now - op.window), '+inf')
  end
  out[i + 1] = r
end
return out
"""

_TAG = re.compile(r"\{([^}]*)\}")


def format_stamp(now: float) -> str:
    """Entry timestamps as stored: microseconds, fixed notation (also the
    refund token, so it must format identically every time)."""
    return f"{now:.6f}"


class _Encoded:
    """A batch as KEYS and ARGV, and how to decode the script's answer."""

    def __init__(self, batch: Batch, prefix: str) -> None:
        self.batch = batch
        self.stamp = format_stamp(batch.now)
        self.keys: list[str] = []
        self.args: list[str | int] = [self.stamp, len(batch.ops)]
        for op in batch.ops:
            self._encode(op, prefix)

    def _encode(self, op: Op, prefix: str) -> None:
        if isinstance(op, CounterOp):
            moving = op.strategy is Strategy.MOVING_WINDOW
            key = f"{prefix}:{op.key}"
            self.args += [
                "CM" if moving else "CS",
                op.action.value,
                op.window,
                op.limit,
                op.amount,
                op.token or "-",
            ]
            self.keys += [key] if moving else [key, f"{key}/-1"]
        elif isinstance(op, DistinctAdd | ProbeAdd):
            if isinstance(op, DistinctAdd):
                bucket = math.floor(self.batch.now * op.buckets / op.window)
                key = f"{prefix}:{op.key}:{bucket}"
                # An HLL bucket must outlive the window it is counted in.
                ttl = op.window + math.ceil(op.window / op.buckets)
                self.args += ["DA", ttl, 0]
            else:
                key = f"{prefix}:{op.key}"
                self.args += ["PA", op.window, op.max_ids]
            self.args += [len(op.members), *op.members]
            self.keys.append(key)
        elif isinstance(op, DistinctCount):
            bucket = math.floor(self.batch.now * op.buckets / op.window)
            names = [f"{prefix}:{op.key}:{b}" for b in range(bucket - op.buckets + 1, bucket + 1)]
            self.args += ["DC", len(names)]
            self.keys += names
        else:
            self.args += ["PR", op.window]
            self.keys.append(f"{prefix}:{op.key}")

    def decode(self, raw: Sequence[Any]) -> BatchResult:
        admitted = bool(raw[0])
        results: list[Result] = []
        for op, value in zip(self.batch.ops, raw[1:], strict=True):
            results.append(self._decode_one(op, value, admitted))
        return BatchResult(admitted, tuple(results))

    def _decode_one(self, op: Op, value: Any, admitted: bool) -> Result:
        if isinstance(op, CounterOp):
            if not isinstance(value, list):
                return None
            ok = bool(value[0])
            if op.strategy is Strategy.MOVING_WINDOW:
                used, retry = int(value[1]), int(value[2])
            else:
                prev, prev_ttl, cur, cur_ttl = (int(v) for v in value[1:5])
                used = sliding_used(prev, prev_ttl, cur, op.window)
                retry = 0
                if op.action is not Action.READ:
                    need = max(op.amount, 1) if not admitted else 1
                    retry = sliding_retry_ms(
                        prev, prev_ttl, cur, cur_ttl, op.window, op.limit, need
                    )
            writes = admitted and op.amount > 0 and op.action in (Action.ADD, Action.CHECK)
            token = self.stamp if writes and op.strategy is Strategy.MOVING_WINDOW else ""
            return CounterResult(ok if op.action is Action.CHECK else True, used, retry, token)
        if not admitted:
            return None
        if isinstance(op, ProbeRead):
            return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in value)
        return int(value)


def _hash_tag(op: Op) -> str:
    match = _TAG.search(op.key)
    return match.group(1) if match else op.key


def _storage_options(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """Defaults for a quota store on the request path: fail fast, retry once.

    A single retry (no backoff) lets a pooled connection that died with a
    restarted server reconnect transparently; more retries would only make
    an outage slower to report.
    """
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    opts = dict(options)
    opts.setdefault("socket_timeout", 1.0)
    opts.setdefault("socket_connect_timeout", 1.0)
    if "+cluster" not in url:
        opts.setdefault("retry", Retry(NoBackoff(), 1))
    return opts


class RedisBackend:
    """Counters in Redis (standalone, Sentinel or Cluster).

    Args:
        url: ``redis://…``, ``rediss://…``, ``redis+unix://…``,
            ``redis+cluster://h:p,h:p`` or ``redis+sentinel://h:p/service``.
        key_prefix: the key namespace (default ``fieldguard``).
        **options: passed to the ``limits`` storage and so to the redis client.

    Raises:
        ConfigurationError: the URL does not parse or the :pypi:`redis`
            package is not installed.
    """

    name = "redis"

    def __init__(self, url: str, key_prefix: str = KEY_PREFIX, **options: Any) -> None:
        try:
            from limits.errors import ConfigurationError as LimitsConfigurationError
            from limits.storage import storage_from_string
            from redis.exceptions import RedisError
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigurationError(
                "redis quota storage needs the 'redis' extra (pip install fieldguard[redis])"
            ) from exc
        self.url = url
        self.prefix = key_prefix
        self.cluster = url.startswith(("redis+cluster", "valkey+cluster"))
        self._options = _storage_options(url, options)
        self._errors: tuple[type[BaseException], ...] = (RedisError,)
        try:
            storage: Any = storage_from_string(url, key_prefix=key_prefix, **self._options)
        except (LimitsConfigurationError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"bad quota storage URL {url!r}: {exc}") from exc
        except RedisError as exc:
            # A Cluster client discovers its slots at construction.
            raise StorageError(f"redis unreachable: {exc}", backend="redis") from exc
        self.storage: Any = storage
        self.client: Any = storage.get_connection()
        self.script: Any = self.client.register_script(BATCH_LUA)
        self._astorage: Any = None
        self._ascript: Any = None

    # -- sync ----------------------------------------------------------

    def _groups(self, batch: Batch) -> list[Batch]:
        if not self.cluster:
            return [batch]
        groups: dict[str, list[Op]] = {}
        for op in batch.ops:
            groups.setdefault(_hash_tag(op), []).append(op)
        return [Batch(batch.now, tuple(ops)) for ops in groups.values()]

    def _wrap(self, exc: BaseException) -> StorageError:
        return StorageError(f"redis quota storage failed: {exc}", backend="redis")

    def execute(self, batch: Batch) -> BatchResult:
        """Run ``batch`` as one ``EVALSHA`` (one per shard on a Cluster)."""
        if not batch.ops:
            return BatchResult(True, ())
        try:
            done: list[tuple[Batch, BatchResult]] = []
            for group in self._groups(batch):
                enc = _Encoded(group, self.prefix)
                result = enc.decode(self.script(keys=enc.keys, args=enc.args))
                done.append((group, result))
                if not result.admitted:
                    self._compensate(done[:-1])
                    break
        except self._errors as exc:
            raise self._wrap(exc) from exc
        return _merge(batch, done)

    def _compensate(self, applied: list[tuple[Batch, BatchResult]]) -> None:
        for batch in _refunds(applied):
            enc = _Encoded(batch, self.prefix)
            self.script(keys=enc.keys, args=enc.args)

    def reset(self) -> None:
        """Delete every ``fieldguard:*`` key (SCAN + DEL; on a Cluster, per node)."""
        try:
            pattern = f"{self.prefix}:*"
            for key in self.client.scan_iter(match=pattern, count=1000):
                self.client.delete(key)
        except self._errors as exc:
            raise self._wrap(exc) from exc

    def close(self) -> None:
        """Close the client's connections."""
        with contextlib.suppress(*self._errors):  # closing a dead connection is fine
            self.client.close()

    # -- async ---------------------------------------------------------

    def _async(self) -> Any:
        """The redis.asyncio client, built on first use through ``limits``'
        async storage (so it binds to the running event loop)."""
        if self._ascript is None:
            from limits.storage import storage_from_string

            opts = {k: v for k, v in self._options.items() if k != "retry"}
            self._astorage = storage_from_string(
                f"async+{self.url}", key_prefix=self.prefix, implementation="redispy", **opts
            )
            client = self._astorage.bridge.get_connection()
            self._ascript = client.register_script(BATCH_LUA)
        return self._ascript

    async def aexecute(self, batch: Batch) -> BatchResult:
        """Async :meth:`execute` on ``redis.asyncio``."""
        if not batch.ops:
            return BatchResult(True, ())
        try:
            script = self._async()
            done: list[tuple[Batch, BatchResult]] = []
            for group in self._groups(batch):
                enc = _Encoded(group, self.prefix)
                result = enc.decode(await script(keys=enc.keys, args=enc.args))
                done.append((group, result))
                if not result.admitted:
                    for refund in _refunds(done[:-1]):
                        renc = _Encoded(refund, self.prefix)
                        await script(keys=renc.keys, args=renc.args)
                    break
        except self._errors as exc:
            raise self._wrap(exc) from exc
        return _merge(batch, done)

    async def areset(self) -> None:
        """Async :meth:`reset`."""
        self.reset()

    async def aclose(self) -> None:
        """Close both clients."""
        if self._astorage is not None:
            client = self._astorage.bridge.get_connection()
            with contextlib.suppress(*self._errors):
                await client.aclose()
            self._astorage = self._ascript = None
        self.close()


def _refunds(applied: list[tuple[Batch, BatchResult]]) -> list[Batch]:
    """Batches that undo the CHECK ops of groups already admitted."""
    out = []
    for batch, result in applied:
        ops: list[Op] = []
        for op, res in zip(batch.ops, result.results, strict=True):
            if isinstance(op, CounterOp) and op.action is Action.CHECK and op.amount > 0:
                token = res.token if isinstance(res, CounterResult) else ""
                ops.append(
                    CounterOp(
                        op.key, op.strategy, Action.SUB, op.window, op.limit, op.amount, token
                    )
                )
        if ops:
            out.append(Batch(batch.now, tuple(ops)))
    return out


def _merge(batch: Batch, done: list[tuple[Batch, BatchResult]]) -> BatchResult:
    """Put per-shard results back in the batch's op order."""
    if len(done) == 1 and done[0][0] is batch:
        return done[0][1]
    admitted = all(r.admitted for _, r in done)
    by_op: dict[int, Result] = {}
    for group, result in done:
        for op, res in zip(group.ops, result.results, strict=True):
            by_op[id(op)] = (
                res
                if (admitted or (isinstance(op, CounterOp) and op.action is Action.CHECK))
                else None
            )
    return BatchResult(admitted, tuple(by_op.get(id(op)) for op in batch.ops))
