"""Scraping limits: quota counters, reservations and enumeration signals.

Rego decides which limits apply to whom; this package counts. Before the plan,
:meth:`Limiter.read` fetches every quota counter of the request's scopes and
the caller's behavioural signals in **one** storage round trip and hands them
to the policy as ``input.usage`` / ``input.signals``. After the response,
:meth:`Limiter.charge` records what was actually exposed against the plan's
``charges`` in one more round trip. :meth:`Limiter.admit` /
:meth:`Limiter.settle` reserve atomically before executing when the
read-then-charge race is not acceptable.

Counting follows :mod:`limits` (moving window, sliding window counter, its
memory and Redis storages); this package does not import any web or GraphQL
framework.

Example:
    >>> from fieldguard.limits import Limiter, QuotaKeys, Exposure
    >>> limiter = Limiter.from_url("memory://", quotas={
    ...     "quotas": {"records_day": {"measure": "records", "window_seconds": 86400}},
    ...     "scopes": ["subject", "app", "ip", "prefix"]})
    >>> keys = QuotaKeys.from_request(subject_id="u7", app="partner-x", ip="203.0.113.9")
    >>> charges = [{"quota": "records_day", "scope": "subject", "key": "u7", "limit": 600,
    ...             "measure": "records", "window_seconds": 86400}]
    >>> _ = limiter.charge(charges, Exposure(records=20, subjects=frozenset({"a", "b"})),
    ...                    keys=keys)
    >>> usage = limiter.read(keys).as_input()
    >>> usage["usage"]["subject"], usage["signals"]["distinct_subjects_day"]
    ({'records_day': 20}, 2)
    >>> limiter.close()
"""

from fieldguard.limits.backend import Backend, backend_from_url
from fieldguard.limits.catalogue import Catalogue, FailMode, Quota, Strategy
from fieldguard.limits.keys import QuotaKeys
from fieldguard.limits.limiter import Limiter
from fieldguard.limits.model import (
    Charge,
    ChargeResult,
    CounterState,
    Exposure,
    Reservation,
    Usage,
)
from fieldguard.limits.signals import SignalConfig, probing_score

__all__ = [
    "Backend",
    "Catalogue",
    "Charge",
    "ChargeResult",
    "CounterState",
    "Exposure",
    "FailMode",
    "Limiter",
    "Quota",
    "QuotaKeys",
    "Reservation",
    "SignalConfig",
    "Strategy",
    "Usage",
    "backend_from_url",
    "probing_score",
]
