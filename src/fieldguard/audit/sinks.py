"""Where audit records go.

A sink is anything with ``emit(event)``; one whose writes block (files,
networks) may also offer an ``aemit(event)`` coroutine, which async
integrations await instead. Sinks must not drop records: a failing sink
raises, and the guard turns that into a refused request rather than
releasing data nobody recorded.

Example:
    >>> import tempfile, json, pathlib
    >>> from fieldguard.audit.events import AuditEvent
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "audit.jsonl"
    >>> sink = JsonLinesSink(path)
    >>> sink.emit(AuditEvent("d1", "fieldguard.plan", {}, {}, "r1", "allow"))
    >>> json.loads(path.read_text())["decision_id"]
    'd1'
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from fieldguard.audit.events import AuditEvent
from fieldguard.errors import StorageError


@runtime_checkable
class AuditSink(Protocol):
    """Receives one event per decided operation."""

    def emit(self, event: AuditEvent) -> None:
        """Store ``event``; raise :class:`StorageError` if it cannot be kept."""
        ...


class MemorySink:
    """Keeps events in a list (tests, ``fieldguard.testing``)."""

    def __init__(self) -> None:
        self.records: list[AuditEvent] = []
        self._lock = threading.Lock()

    def emit(self, event: AuditEvent) -> None:
        with self._lock:
            self.records.append(event)


class JsonLinesSink:
    """Appends one JSON object per line to a file.

    Args:
        path: the log file (created with its directory).
        fsync: flush to disk before returning, so a record is durable before
            the data it describes is released.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._fh: IO[str] | None = None

    def _file(self) -> IO[str]:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")
        return self._fh

    def emit(self, event: AuditEvent) -> None:
        line = json.dumps(event.as_dict(), separators=(",", ":"), sort_keys=True, default=str)
        with self._lock:
            try:
                fh = self._file()
                fh.write(line + "\n")
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())
            except OSError as exc:
                raise StorageError(f"audit log {self.path} not writable: {exc}",
                                   backend="file") from exc

    async def aemit(self, event: AuditEvent) -> None:
        """:meth:`emit` in a worker thread: a write (and, with ``fsync``, a
        flush to disk) does not stall the event loop."""
        await asyncio.to_thread(self.emit, event)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
