"""Helpers for testing your own app's enforcement.

Example:
    >>> from fieldguard.guard import Guard
    >>> from fieldguard.policies.source import PolicySet
    >>> guard = Guard(policy=PolicySet.from_sources([("p.rego", "package p\\n")]))
    >>> with capture_decisions(guard) as records:
    ...     pass
    >>> records
    []
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fieldguard.audit.events import AuditEvent
from fieldguard.audit.sinks import MemorySink
from fieldguard.guard import Guard


class _Tee:
    def __init__(self, first: Any, second: MemorySink) -> None:
        self.first, self.second = first, second

    def emit(self, event: AuditEvent) -> None:
        self.second.emit(event)
        if self.first is not None:
            self.first.emit(event)


@contextmanager
def capture_decisions(guard: Guard) -> Iterator[list[AuditEvent]]:
    """Collect the audit events ``guard`` emits inside the block (the guard's
    own sink still receives them)."""
    memory = MemorySink()
    original = guard.audit
    guard.audit = _Tee(original, memory)
    try:
        yield memory.records
    finally:
        guard.audit = original
