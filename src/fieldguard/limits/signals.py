"""Behavioural signals: distinct subjects, records, request rate, id probing.

Signals are kept per *principal* (the subject, else the IP address) and fed to
the plan as ``input.signals``; Rego decides what they mean.

**Distinct data subjects per window.** Redis keeps a HyperLogLog per
principal per time bucket (``PFADD``) and answers with ``PFCOUNT`` over the
buckets of the window, which returns the cardinality of their *union* in one
command. Redis HLLs use 16384 registers, so the standard error is
1.04 / sqrt(16384) ≈ 0.81% (about ±1 at 120 subjects, ±8 at 1,000). Because an
HLL cannot forget a member, the window is a ring of ``distinct_buckets`` buckets:
it covers between ``window - window/buckets`` and ``window`` seconds. The memory
backend keeps an exact ``{subject: last_seen}`` map instead.

**Records and request rate** are sliding-window counters with the same layout
and semantics as :class:`limits.strategies.SlidingWindowCounterRateLimiter`.

**Sequential-id probing** — see :func:`probing_score`.

Example:
    >>> probing_score([str(i) for i in range(1000, 1012)])
    1.0
    >>> probing_score(["1005", "48213", "907", "31337"])
    0.0
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_ID = re.compile(r"^(.*?)(\d{1,18})$")


def window_name(seconds: int) -> str:
    """``86400`` → ``day``, ``3600`` → ``hour``, ``60`` → ``minute``, else ``<n>s``."""
    return {86400: "day", 3600: "hour", 60: "minute", 1: "second"}.get(seconds, f"{seconds}s")


@dataclass(frozen=True)
class SignalConfig:
    """Windows and thresholds of the behavioural signals.

    Attributes:
        distinct_window_seconds: window of ``distinct_subjects_<w>``.
        distinct_buckets: HLL buckets per window (granularity of its sliding edge).
        records_window_seconds: window of ``records_<w>``.
        rate_window_seconds: window of ``request_rate_<w>``.
        probe_window_seconds: how long a probed id is remembered.
        probe_max_ids: at most this many recent probed ids are kept per principal.
        probe_delta: ids at most this far apart count as neighbours.
        probe_min_samples: the score reaches 1.0 only from this many distinct ids.
    """

    distinct_window_seconds: int = 86400
    distinct_buckets: int = 24
    records_window_seconds: int = 86400
    rate_window_seconds: int = 60
    probe_window_seconds: int = 600
    probe_max_ids: int = 64
    probe_delta: int = 3
    probe_min_samples: int = 10

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"SignalConfig.{name} must be a positive int")

    @property
    def bucket_seconds(self) -> float:
        """Length of one distinct-subject bucket."""
        return self.distinct_window_seconds / self.distinct_buckets

    def names(self) -> dict[str, str]:
        """Signal names as they appear in ``input.signals``."""
        return {
            "distinct": f"distinct_subjects_{window_name(self.distinct_window_seconds)}",
            "records": f"records_{window_name(self.records_window_seconds)}",
            "rate": f"request_rate_{window_name(self.rate_window_seconds)}",
            "probe": "enumeration_score",
            "probed": "probed_ids",
        }


def parse_probe_id(raw: str) -> tuple[str, int] | None:
    """Split an id into (namespace, number): ``"1005"`` → ``("", 1005)``,
    ``"user_1005"`` → ``("user_", 1005)``; ids without trailing digits → None.

    Namespaces keep ``order_17`` and ``user_18`` from counting as neighbours.
    """
    match = _ID.match(raw.strip())
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def probing_score(ids: Iterable[str], delta: int = 3, min_samples: int = 10) -> float:
    """Score in [0, 1] of how much ``ids`` look like a walk over an id space.

    Algorithm: take the *distinct* numeric ids the principal asked for by
    argument within the probe window (re-reading one profile is not probing);
    an id is a *neighbour* when another recent id of the same namespace lies
    within ``delta`` of it (``0 < |a - b| <= delta``). The score is::

        neighbour_fraction x min(1, n / min_samples)

    A scraper walking 1000, 1001, 1002… (in any order, with gaps up to
    ``delta``) has every id a neighbour, so it reaches 1.0 once it has probed
    ``min_samples`` ids. A person opening a few profiles scores ~0: random ids
    in a large space are rarely within ``delta`` of each other, and the
    ``n / min_samples`` factor keeps two adjacent ids (e.g. a thread's
    consecutive posts) at 0.2 rather than 1.0.

    Limits: dense, small id spaces (a few hundred ids) make neighbours common
    by chance; opaque or random ids (UUIDs, base64 global ids) are not scored.

    Example:
        >>> probing_score(["1005", "1006"])
        0.2
        >>> probing_score([str(i) for i in range(1000, 1040, 3)])
        1.0
    """
    groups: dict[str, set[int]] = {}
    for raw in ids:
        parsed = parse_probe_id(raw)
        if parsed is not None:
            groups.setdefault(parsed[0], set()).add(parsed[1])
    n = sum(len(v) for v in groups.values())
    if n < 2:
        return 0.0
    neighbours = 0
    for values in groups.values():
        ordered = sorted(values)
        for i, value in enumerate(ordered):
            # Sorted and distinct: the nearest other id is an adjacent element.
            left = i > 0 and value - ordered[i - 1] <= delta
            right = i + 1 < len(ordered) and ordered[i + 1] - value <= delta
            neighbours += bool(left or right)
    score = (neighbours / n) * min(1.0, n / min_samples)
    return round(min(1.0, max(0.0, score)), 4)
