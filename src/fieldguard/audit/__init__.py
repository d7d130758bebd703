"""Audit: one record per decided operation, and sinks that keep them.

Example:
    >>> from fieldguard.audit import MemorySink
    >>> sink = MemorySink()
    >>> sink.records
    []
"""

from fieldguard.audit.events import AuditEvent, Exposure
from fieldguard.audit.sinks import AuditSink, JsonLinesSink, MemorySink

__all__ = ["AuditEvent", "AuditSink", "Exposure", "JsonLinesSink", "MemorySink"]
