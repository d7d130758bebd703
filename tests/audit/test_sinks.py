from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from fieldguard.audit import AuditEvent, Exposure, JsonLinesSink, MemorySink
from fieldguard.errors import StorageError


def _event(n: int) -> AuditEvent:
    return AuditEvent(f"d{n}", "fieldguard.plan", {"n": n}, {"allow": True}, "r1", "allow")


def test_jsonl_sink_appends_one_line_per_event_from_many_threads(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path / "a" / "audit.jsonl", fsync=True)
    threads = [threading.Thread(target=lambda i=i: [sink.emit(_event(i * 100 + k))
                                                    for k in range(50)]) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.close()
    lines = (tmp_path / "a" / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 200
    assert {json.loads(x)["decision_id"] for x in lines} == {f"d{i * 100 + k}"
                                                             for i in range(4) for k in range(50)}
    record = json.loads(lines[0])
    assert set(record) >= {"decision_id", "timestamp", "path", "input", "result", "bundles",
                           "metrics", "labels", "exposure"}


def test_unwritable_log_raises_storage_error(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    sink = JsonLinesSink(tmp_path / "dir")  # a directory: cannot be opened for append
    with pytest.raises(StorageError):
        sink.emit(_event(1))


def test_async_emit_writes_from_a_worker_thread(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path / "audit.jsonl", fsync=True)

    async def write_all() -> None:
        await asyncio.gather(*[sink.aemit(_event(n)) for n in range(20)])

    asyncio.run(write_all())
    sink.close()
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["decision_id"] for x in lines) == sorted(f"d{n}"
                                                                        for n in range(20))
    with pytest.raises(StorageError):  # failures still surface, awaited
        asyncio.run(JsonLinesSink(tmp_path).aemit(_event(1)))


def test_exposure_tally() -> None:
    ex = Exposure()
    ex.note("User.email", "allow", subject="u1")
    ex.note("User.email", "deny", subject="u2")   # withheld: u2's data did not leave
    ex.note("User.phone", "mask", subject="u3", count=3)
    ex.add_records(5, 1)
    assert ex.as_dict() == {"released": {"User.email": 1}, "masked": {"User.phone": 3},
                            "withheld": {"User.email": 1}, "subjects": ["u1", "u3"],
                            "records": 5, "hidden": 1}


def test_memory_sink() -> None:
    sink = MemorySink()
    sink.emit(_event(1))
    assert [e.decision_id for e in sink.records] == ["d1"]
