"""The audit record: what was decided, and what data actually left the API.

Fields follow OPA's decision-log format (``decision_id``, ``timestamp``,
``path``, ``input``, ``result``, ``bundles.revision``, ``metrics``,
``labels``), plus ``exposure``: coordinates released, masked and withheld
(with counts) and the ids of the data subjects whose personal fields were
released.

Example:
    >>> ex = Exposure()
    >>> ex.note("User.email", "mask", subject="u2")
    >>> ex.note("User.email", "mask", subject="u3")
    >>> ex.as_dict()["masked"], ex.as_dict()["subjects"]
    ({'User.email': 2}, ['u2', 'u3'])
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_KIND = {"allow": "released", "mask": "masked", "deny": "withheld"}


class Exposure:
    """Per-request tally of what left the API (thread-safe: resolvers may run
    on executor threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.released: Counter[str] = Counter()
        self.masked: Counter[str] = Counter()
        self.withheld: Counter[str] = Counter()
        self.subjects: set[str] = set()
        self.records = 0
        self.hidden = 0

    def note(self, coordinate: str, effect: str, *, subject: str | None = None,
             count: int = 1) -> None:
        """Count ``count`` values of ``coordinate`` under ``effect``.

        ``subject`` is the data subject whose personal value was released
        (masked values count: a masked email is still personal data).
        """
        with self._lock:
            getattr(self, _KIND[effect])[coordinate] += count
            if subject is not None and effect != "deny":
                self.subjects.add(subject)

    def add_records(self, shown: int, hidden: int = 0) -> None:
        """Count guarded objects returned and dropped as invisible."""
        with self._lock:
            self.records += shown
            self.hidden += hidden

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        with self._lock:
            return {
                "released": dict(self.released),
                "masked": dict(self.masked),
                "withheld": dict(self.withheld),
                "subjects": sorted(self.subjects),
                "records": self.records,
                "hidden": self.hidden,
            }


def utcnow() -> str:
    """RFC 3339 timestamp in UTC with microseconds, as OPA writes them."""
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class AuditEvent:
    """One decided operation.

    Attributes:
        decision_id: the plan decision's id (the request id when given).
        path: ``fieldguard.plan``.
        input: the plan input (caller, operation, coordinates; no data values).
        result: the plan as the policy returned it.
        revision: the policy revision that decided.
        outcome: the final outcome, including failures (``unavailable``…).
        exposure: what left the API (see :class:`Exposure`).
        metrics: engine calls, evaluation time, objects evaluated.
        errors: error codes returned to the caller.
        labels: app-supplied labels.
    """

    decision_id: str
    path: str
    input: dict[str, Any]
    result: Any
    revision: str
    outcome: str
    engine: str = ""
    exposure: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    timestamp: str = field(default_factory=utcnow)

    def as_dict(self) -> dict[str, Any]:
        """The JSON record (OPA decision-log field names)."""
        return {
            "decision_id": self.decision_id,
            "timestamp": self.timestamp,
            "path": self.path,
            "input": self.input,
            "result": self.result,
            "bundles": {"fieldguard": {"revision": self.revision}},
            "engine": self.engine,
            "outcome": self.outcome,
            "exposure": self.exposure,
            "metrics": self.metrics,
            "errors": self.errors,
            "labels": self.labels,
        }
