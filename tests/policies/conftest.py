"""Engines for the policy tests: every engine is real, none is mocked.

``make_engine`` is parametrized over regorus, OPA embedded, the HTTP engine
against the fixture OPA server (real HTTP, OPA's engine behind it), and a
real OPA when ``FIELDGUARD_OPA_URL`` is set (``http://host:port`` or
``opa+http://host:port``; tests marked ``real_opa``, skipped otherwise).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fieldguard.policies.engine import Engine
from fieldguard.policies.source import PolicySet
from tests.support.opa_server import OpaFixtureServer

EngineMaker = Callable[..., Engine]


def real_opa_url() -> str | None:
    """``FIELDGUARD_OPA_URL`` as an engine URL, or None."""
    url = os.environ.get("FIELDGUARD_OPA_URL", "").strip()
    if not url:
        return None
    return url if url.startswith("opa+") else "opa+" + url


@pytest.fixture(scope="session")
def opa_server() -> Iterator[OpaFixtureServer]:
    """One fixture OPA server for the session (see ``fresh_opa``)."""
    with OpaFixtureServer() as server:
        yield server


@pytest.fixture
def fresh_opa(opa_server: OpaFixtureServer) -> Iterator[OpaFixtureServer]:
    """The fixture server with no policies, no data and no failure knobs."""
    opa_server.clear()
    opa_server.reset()
    yield opa_server
    opa_server.reset()


ENGINE_KINDS = [
    "regorus",
    pytest.param("opa-embedded", marks=pytest.mark.opa_embedded),
    "opa-http",
    pytest.param("real-opa", marks=pytest.mark.real_opa),
]


@pytest.fixture(params=ENGINE_KINDS)
def engine_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    if kind == "real-opa" and real_opa_url() is None:
        pytest.skip("set FIELDGUARD_OPA_URL=http://host:8181 to run against a real OPA")
    return kind


@pytest.fixture
def make_engine(engine_kind: str, request: pytest.FixtureRequest) -> Iterator[EngineMaker]:
    """``make_engine(policy, **options)`` builds an engine of the current kind."""
    made: list[Engine] = []

    def make(policy: PolicySet | None = None, **options: Any) -> Engine:
        from fieldguard.policies.engine import engine_from_url

        if engine_kind == "regorus":
            engine = engine_from_url("regorus://", policy, **options)
        elif engine_kind == "opa-embedded":
            engine = engine_from_url("opa-embedded://", policy, **options)
        elif engine_kind == "opa-http":
            server: OpaFixtureServer = request.getfixturevalue("fresh_opa")
            engine = engine_from_url(server.engine_url, policy, **options)
        else:
            url = real_opa_url()
            assert url is not None
            engine = engine_from_url(url, policy, timeout=2.0, **options)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()
