"""A fixture server that speaks OPA's REST API with OPA's own engine behind it.

No package registry the project can reach ships the OPA server binary, so the
``opa+http://`` engine is tested against this server: a ``ThreadingHTTPServer``
on a loopback ephemeral port, answering with ``opa_bindings.OpaEngine`` (OPA
v1.20's Go engine), so every decision, error and compile message is OPA's own.
Only the HTTP layer is re-implemented, following OPA's ``v1/server`` handlers:

==========================  ===============================================
``POST/GET /v1/data/{p}``   ``{"result": …}``, or ``{}`` when undefined;
                            ``?provenance`` and ``?metrics`` add those keys;
                            evaluation errors → 500 ``internal_error``
``PUT /v1/policies/{id}``   compiles *all* modules like OPA; errors → 400
                            ``{code, message, errors[{code, message,
                            location{file,row,col}}]}``, nothing changed
``GET/DELETE /v1/policies`` list, get (``raw``), delete (recompiles)
``PUT/DELETE /v1/data/{p}`` replace or remove a base document (204)
``GET /health``             ``{}`` with 200
``POST /v1/compile/{p}``    data filters (OPA ≥ 1.4 shape) through
                            ``compile_filters``; the target is chosen by
                            ``Accept: application/vnd.opa.sql.<dialect>+json``
                            or ``…ucast.<dialect>+json``
==========================  ===============================================

``POST /v1/compile`` without a path (partial evaluation to a Rego AST) answers
501: the bindings expose no AST output, only SQL/UCAST filters.

Knobs for failure tests (set them on a running server, reset with
:meth:`OpaFixtureServer.reset`): ``delay`` (seconds before answering data
requests), ``fail_status`` (answer data requests with this status),
``fail_health``, ``token`` (require ``Authorization: Bearer <token>`` on every
endpoint, as OPA does with ``--authentication=token``), ``bundle_revision``
(reported under ``provenance``), ``decision_ids`` (add ``decision_id`` as OPA
does when decision logging is on). ``requests`` records ``(method, path)`` of
every request and ``connections`` counts TCP connections accepted.

Example:
    >>> import requests
    >>> with OpaFixtureServer() as opa:
    ...     _ = requests.put(opa.url + "/v1/policies/p", data="package p\\nx := input.n\\n")
    ...     requests.post(opa.url + "/v1/data/p/x", json={"input": {"n": 3}}).json()
    {'result': 3}
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from opa_bindings.engine import OpaEngine, OpaError, OpaUndefinedError

_LOCATED = re.compile(
    r"^(?:.*?occurred: )?(?P<file>[^\s:][^:]*?):(?P<row>\d+)(?::(?P<col>\d+))?: "
    r"(?P<code>[a-z_]+_error): (?P<msg>.*)$"
)


def opa_errors(text: str) -> list[dict[str, Any]]:
    """OPA's structured ``errors`` list from the engine's error text.

    The column comes from the caret OPA prints under parse errors (counted
    on the line with its indentation removed) and is 1 when there is none;
    a real OPA server reports exact columns, the fixture approximates them.
    """
    out: list[dict[str, Any]] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _LOCATED.match(line.strip())
        if not m:
            continue
        col = int(m["col"]) if m["col"] else 1
        if not m["col"] and i + 2 < len(lines) and lines[i + 2].strip() == "^":
            col = lines[i + 2][1:].index("^") + 1
        out.append(
            {
                "code": m["code"],
                "message": m["msg"],
                "location": {"file": m["file"], "row": int(m["row"]), "col": col},
            }
        )
    return out


class _Reject(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", ""))
        self.status, self.body = status, body


def _error(
    status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None
) -> _Reject:
    body: dict[str, Any] = {"code": code, "message": message}
    if errors:
        body["errors"] = errors
    return _Reject(status, body)


class _Server(ThreadingHTTPServer):
    # The default listen backlog of 5 drops bursts of new connections (an
    # async client opening 40 at once), which OPA's Go server does not.
    request_queue_size = 256
    daemon_threads = True


class OpaFixtureServer:
    """OPA's REST API on ``127.0.0.1:<ephemeral>``, in a background thread.

    Args:
        token: require this bearer token on every request.
    """

    def __init__(self, *, token: str | None = None) -> None:
        self.token = token
        self._lock = threading.Lock()
        self._modules: dict[str, str] = {}
        self._data: dict[str, Any] = {}
        self._engine = OpaEngine()
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self.reset()
        self._httpd = _Server(("127.0.0.1", 0), _handler_for(self))
        self._thread: threading.Thread | None = None

    # -- knobs ---------------------------------------------------------------

    def reset(self) -> None:
        """Clear failure knobs and the request log (policies and data stay)."""
        self.delay = 0.0
        self.fail_status: int | None = None
        self.fail_health = False
        self.bundle_revision: str | None = None
        self.decision_ids = False
        self.requests: list[tuple[str, str]] = []
        self.connections = 0

    def clear(self) -> None:
        """Remove every policy and all data, as a freshly started OPA."""
        with self._lock:
            old = self._engine
            self._modules, self._data, self._engine = {}, {}, OpaEngine()
        old.close()

    def count(self, method: str, path_prefix: str = "") -> int:
        """How many requests with ``method`` whose path starts with ``path_prefix``."""
        return sum(1 for m, p in list(self.requests) if m == method and p.startswith(path_prefix))

    # -- lifecycle -----------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def engine_url(self) -> str:
        """``opa+http://127.0.0.1:<port>``, for :func:`engine_from_url`."""
        return f"opa+http://127.0.0.1:{self.port}"

    def start(self) -> OpaFixtureServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"opa-fixture-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        # Keep-alive connections would keep their handler threads blocked
        # on read; closing them ends those threads now.
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._engine.close()

    def __enter__(self) -> OpaFixtureServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- OPA semantics -------------------------------------------------------

    def _compile(self, modules: dict[str, str], data: dict[str, Any]) -> OpaEngine:
        """A new engine for ``modules`` + ``data``, or a 400 like OPA's."""
        engine = OpaEngine()
        try:
            for mid, text in sorted(modules.items()):
                try:
                    engine.add_policy(mid, text)
                except OpaError as exc:
                    raise _error(
                        400,
                        "invalid_parameter",
                        "error(s) occurred while compiling module(s)",
                        opa_errors(exc.message),
                    ) from exc
            try:
                if data:
                    engine.add_data(data)
                engine.eval_query("true")  # the bindings compile lazily
            except OpaError as exc:
                raise _error(
                    400,
                    "invalid_parameter",
                    "error(s) occurred while compiling module(s)",
                    opa_errors(exc.message),
                ) from exc
        except BaseException:
            engine.close()
            raise
        return engine

    def _swap(self, modules: dict[str, str], data: dict[str, Any]) -> None:
        # Called with self._lock held; compile first, so a failure changes nothing.
        engine = self._compile(modules, data)
        old = self._engine
        self._modules, self._data, self._engine = modules, data, engine
        old.close()

    def put_policy(self, mid: str, text: str) -> dict[str, Any]:
        with self._lock:
            self._swap({**self._modules, mid: text}, self._data)
        return {}

    def delete_policy(self, mid: str) -> dict[str, Any]:
        with self._lock:
            if mid not in self._modules:
                raise _error(
                    404, "resource_not_found", f"storage_not_found_error: policy id {mid!r}"
                )
            modules = {k: v for k, v in self._modules.items() if k != mid}
            self._swap(modules, self._data)
        return {}

    def put_data(self, path: list[str], value: Any) -> None:
        with self._lock:
            data = json.loads(json.dumps(self._data))
            if not path:
                if not isinstance(value, dict):
                    raise _error(400, "invalid_parameter", "root document must be an object")
                data = value
            else:
                node = data
                for seg in path[:-1]:
                    node = node.setdefault(seg, {})
                    if not isinstance(node, dict):
                        raise _error(404, "resource_conflict", f"write conflict at {seg}")
                node[path[-1]] = value
            self._swap(self._modules, data)

    def delete_data(self, path: list[str]) -> None:
        with self._lock:
            data = json.loads(json.dumps(self._data))
            node = data
            for seg in path[:-1]:
                node = node.get(seg) if isinstance(node, dict) else None
            if not path or not isinstance(node, dict) or path[-1] not in node:
                raise _error(
                    404,
                    "resource_not_found",
                    f"storage_not_found_error: /{'/'.join(path)}: document does not exist",
                )
            del node[path[-1]]
            self._swap(self._modules, data)

    def _eval(self, path: str, input: Any) -> Any:
        # A concurrent PUT swaps in a new engine and closes the old one; an
        # evaluation that picked up the old one asks the new one, as OPA
        # (which swaps compilers, never failing a query) would answer.
        while True:
            engine = self._engine
            try:
                return engine.eval_document(path, input)
            except OpaError as exc:
                if exc.code not in ("closed", "invalid_handle") or engine is self._engine:
                    raise

    def decide(
        self, path: list[str], input: Any, params: dict[str, list[str]], has_input: bool
    ) -> dict[str, Any]:
        start = time.perf_counter_ns()
        if self.delay:
            self._stopping.wait(self.delay)
        if self.fail_status is not None:
            raise _error(self.fail_status, "internal_error", "fixture told to fail")
        body: dict[str, Any] = {}
        try:
            body["result"] = self._eval(".".join(path), input if has_input else None)
        except OpaUndefinedError:
            pass
        except OpaError as exc:
            raise _error(
                500,
                "internal_error",
                "error(s) occurred while evaluating query",
                opa_errors(exc.message) or [{"code": exc.code, "message": exc.message}],
            ) from exc
        if self.decision_ids:
            body["decision_id"] = str(uuid.uuid4())
        if "provenance" in params:
            prov: dict[str, Any] = {"version": "fixture (OPA v1.20.2 engine)"}
            if self.bundle_revision is not None:
                prov["bundles"] = {"fixture": {"revision": self.bundle_revision}}
            body["provenance"] = prov
        if "metrics" in params:
            body["metrics"] = {"timer_server_handler_ns": time.perf_counter_ns() - start}
        return body

    def compile_filters(
        self, path: list[str], request: dict[str, Any], accept: str
    ) -> dict[str, Any]:
        m = re.match(r"application/vnd\.opa\.(sql|ucast)\.(\w+)\+json", accept or "")
        if not m:
            raise _error(
                501,
                "not_implemented",
                "the fixture compiles data filters only (Accept: "
                "application/vnd.opa.sql.<dialect>+json or ucast); "
                "Rego AST partial evaluation is not available in the bindings",
            )
        with self._lock:
            engine = self._engine
        options = request.get("options") or {}
        try:
            result = engine.compile_filters(
                "data." + ".".join(path),
                request.get("input"),
                unknowns=request.get("unknowns") or ("input",),
                target=m[1],
                dialect=m[2],
                mappings=options.get("targetSQLTableMappings"),
            )
        except OpaError as exc:
            raise _error(400, "invalid_parameter", exc.message, opa_errors(exc.message)) from exc
        return {"result": result}


def _handler_for(server: OpaFixtureServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as OPA's Go server

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without TCP_NODELAY,
            # Nagle plus delayed ACKs add ~40 ms per response (Go's net/http,
            # which OPA uses, sets TCP_NODELAY too).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            server.connections += 1
            server._sockets.add(self.connection)

        def finish(self) -> None:
            server._sockets.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any = None) -> None:
            raw = b"" if body is None else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            except OSError:  # the client gave up (timeout tests)
                self.close_connection = True

        def _route(self) -> None:
            parts = urlsplit(self.path)
            server.requests.append((self.command, parts.path))
            params = parse_qs(parts.query, keep_blank_values=True)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                if server.token is not None and (
                    self.headers.get("Authorization") != f"Bearer {server.token}"
                ):
                    raise _error(401, "unauthorized", "the requested operation is not authorized")
                status, body = self._dispatch(parts.path, params, raw)
            except _Reject as rej:
                status, body = rej.status, rej.body
            self._send(status, body)

        def _json(self, raw: bytes) -> Any:
            try:
                return json.loads(raw) if raw else None
            except json.JSONDecodeError as exc:
                raise _error(
                    400, "invalid_parameter", f"body contains malformed input document: {exc}"
                ) from exc

        def _dispatch(self, path: str, params: dict[str, list[str]], raw: bytes) -> tuple[int, Any]:
            method = self.command
            if path == "/health" and method == "GET":
                if server.fail_health:
                    return 500, {"error": "fixture told to be unhealthy"}
                return 200, {}
            for prefix in ("/v1/data", "/v1/policies", "/v1/compile"):
                if path == prefix or path.startswith(prefix + "/"):
                    rest = unquote(path[len(prefix) :].strip("/"))
                    break
            else:
                return 404, {"code": "resource_not_found", "message": f"no route {path}"}
            segs = [s for s in rest.split("/") if s]
            if prefix == "/v1/data":
                if method in ("POST", "GET"):
                    doc = self._json(raw) if method == "POST" else None
                    has_input = isinstance(doc, dict) and "input" in doc
                    if method == "GET" and "input" in params:
                        doc, has_input = {"input": json.loads(params["input"][-1])}, True
                    return 200, server.decide(
                        segs, doc["input"] if has_input else None, params, has_input
                    )
                if method == "PUT":
                    server.put_data(segs, self._json(raw))
                    return 204, None
                if method == "DELETE":
                    server.delete_data(segs)
                    return 204, None
            elif prefix == "/v1/policies":
                if method == "PUT":
                    return 200, server.put_policy(rest, raw.decode())
                if method == "DELETE":
                    return 200, server.delete_policy(rest)
                if method == "GET":
                    with server._lock:
                        mods = dict(server._modules)
                    if not rest:
                        return 200, {"result": [{"id": k, "raw": v} for k, v in mods.items()]}
                    if rest not in mods:
                        raise _error(
                            404,
                            "resource_not_found",
                            f"storage_not_found_error: policy id {rest!r}",
                        )
                    return 200, {"result": {"id": rest, "raw": mods[rest]}}
            elif prefix == "/v1/compile" and method == "POST":
                if not segs:
                    raise _error(
                        501,
                        "not_implemented",
                        "POST /v1/compile (Rego AST partial evaluation) is not "
                        "implemented by the fixture; use POST /v1/compile/{path}",
                    )
                return 200, server.compile_filters(
                    segs, self._json(raw) or {}, self.headers.get("Accept", "")
                )
            return 405, {"code": "method_not_allowed", "message": f"{method} {path}"}

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _route

    return Handler
