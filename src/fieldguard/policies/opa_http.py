"""A real OPA server over HTTP (``opa+http://host:port``, ``opa+https://…``).

Decisions are ``POST /v1/data/<path>`` with ``{"input": …}``. The engine
talks to OPA through ``opa-python-client`` (``OpaClient`` for sync,
``AsyncOpaClient`` for async) and keeps one connection pool per client, so
a decision reuses a warm keep-alive connection.

The decision call is latency-critical and must fail fast and closed, which
the client's high-level ``query_rule`` does not allow: it retries (with
back-off) by default, turns HTTP errors into bare ``HTTPError`` without OPA's
error body, and cannot tell undefined from an empty result. So the clients
are built with ``retries=0`` and decisions are sent on the client's own
session object (the client still owns headers, the bearer token and the
connection pool). Timeouts, refused connections, TLS failures and HTTP
errors all become *unavailable* decisions that name the cause; OPA's
answer without ``result`` is *undefined*.

With a policy, the engine pushes it: each module with
``PUT /v1/policies/<prefix><path>`` and each top-level data document with
``PUT /v1/data/<key>`` (``data.policy`` for the compliance data). OPA
compiles every module on each ``PUT``, so modules are pushed until no more
succeed (a module calling a function of a module not yet pushed succeeds on
a later round); modules under the prefix that the new policy no longer has
are deleted. If anything fails, every module and data document already
changed is restored from the snapshot taken before the push, so the last
good policy keeps serving, and :class:`PolicyError` names ``file:line:col``.

Example:
    >>> engine = OpaHttpEngine("opa+http://127.0.0.1:8181", policy)  # doctest: +SKIP
    >>> engine.evaluate("fieldguard.plan", {"subject": {"id": "u7"}}).outcome  # doctest: +SKIP
    <Outcome.VALUE: 'value'>
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fieldguard.errors import (
    ConfigurationError,
    EngineUnavailable,
    PolicyError,
    PolicyProblem,
)
from fieldguard.policies.decision import Decision, Outcome, new_decision_id
from fieldguard.policies.opa_embedded import DECISION_PATH
from fieldguard.policies.source import PolicySet

DEFAULT_PORT = 8181  # OPA's own default
INSTALL_HINT = "pip install 'fieldguard[opa]'  (opa-python-client)"
_JSON = {"Content-Type": "application/json"}


def _load_client() -> Any:
    try:
        import opa_client
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            f"the opa+http(s):// engine needs opa-python-client; install it with `{INSTALL_HINT}`"
        ) from exc
    return opa_client


def parse_engine_url(url: str) -> tuple[bool, str, int]:
    """Check an ``opa+http(s)://host[:port]`` URL; return (tls, host, port).

    Raises:
        ConfigurationError: wrong scheme, no host, a bad port, or parts OPA's
            decision API does not use (path, query, credentials).

    Example:
        >>> parse_engine_url("opa+https://opa.internal:8443")
        (True, 'opa.internal', 8443)
        >>> parse_engine_url("opa+http://localhost")
        (False, 'localhost', 8181)
    """
    parts = urlsplit(url)
    if parts.scheme not in ("opa+http", "opa+https"):
        raise ConfigurationError(
            f"OPA engine URL {url!r} must start with opa+http:// or opa+https://"
        )
    if not parts.hostname:
        raise ConfigurationError(f"OPA engine URL {url!r} has no host; use opa+http://HOST:PORT")
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(
            f"OPA engine URL {url!r} has an invalid port; use a number from 1 to 65535"
        ) from exc
    if port == 0:
        raise ConfigurationError(f"OPA engine URL {url!r} has port 0; use OPA's real port")
    if parts.username or parts.password:
        raise ConfigurationError(
            f"OPA engine URL {url!r} carries credentials; pass token= instead"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigurationError(
            f"OPA engine URL {url!r} must be only scheme, host and port "
            "(OPA serves its API at /v1 on the root)"
        )
    return parts.scheme == "opa+https", parts.hostname, port or DEFAULT_PORT


def _describe_body(payload: bytes) -> str:
    """OPA's error body as one line: ``code: message (file:row: code: message; …)``."""
    try:
        body = json.loads(payload)
    except ValueError:
        return payload[:200].decode(errors="replace").strip() or "empty body"
    if not isinstance(body, dict):
        return str(body)[:200]
    text = ": ".join(str(body[k]) for k in ("code", "message") if body.get(k))
    details = []
    for err in body.get("errors") or []:
        loc = err.get("location") or {}
        where = f"{loc['file']}:{loc.get('row', 1)}: " if loc.get("file") else ""
        details.append(f"{where}{err.get('code', '')}: {err.get('message', '')}")
    if details:
        text += " (" + "; ".join(details) + ")"
    return text or str(body)[:200]


class OpaHttpEngine:
    """Decisions from a real OPA server (see module docs).

    Args:
        url: ``opa+http://host:port`` or ``opa+https://host:port``
            (port defaults to 8181).
        policy: the policy to push; None when OPA loads its own bundles.
        timeout: seconds a decision may take, connect and read each
            (default 250 ms); after that the decision is unavailable.
        admin_timeout: seconds for health checks and policy pushes, which
            compile on the server and may take longer than a decision.
        token: bearer token sent on every request.
        ca_cert: PEM file of the CA that signed OPA's certificate.
        client_cert: PEM file with certificate and key, or a
            ``(cert, key)`` pair, for mutual TLS.
        verify: verify OPA's certificate (turning it off is for tests only).
        push: push ``policy`` (and reloads) to OPA. With False, OPA serves
            bundles and the revision is read from OPA's provenance.
        health_check: check ``GET /health`` at construction.
        policy_prefix: policy ids this engine owns on the server; ids under
            it that the current policy lacks are deleted on load.

    Raises:
        ConfigurationError: a bad URL or option, or OPA cannot be reached,
            refuses the token or is unhealthy at construction (the message
            says what to change).
        PolicyError: the pushed policy does not compile.

    Example:
        >>> OpaHttpEngine("opa+http://127.0.0.1:1/", health_check=False).name
        'opa-http'
        >>> OpaHttpEngine("http://127.0.0.1:8181")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        ...
        fieldguard.errors.ConfigurationError: OPA engine URL … must start with opa+http://
    """

    name = "opa-http"

    def __init__(
        self,
        url: str,
        policy: PolicySet | None = None,
        *,
        timeout: float = 0.25,
        admin_timeout: float = 5.0,
        token: str | None = None,
        ca_cert: str | Path | None = None,
        client_cert: str | Path | tuple[str | Path, str | Path] | None = None,
        verify: bool = True,
        push: bool = True,
        health_check: bool = True,
        policy_prefix: str = "fieldguard/",
    ) -> None:
        self.tls, self.host, self.port = parse_engine_url(url)
        for label, value in (("timeout", timeout), ("admin_timeout", admin_timeout)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigurationError(f"{label} must be a positive number of seconds")
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise ConfigurationError("token must be a non-empty string (or None)")
        if not self.tls and (ca_cert or client_cert or not verify):
            raise ConfigurationError(
                "ca_cert, client_cert and verify apply to TLS; use an opa+https:// URL"
            )
        if ca_cert is not None and not verify:
            raise ConfigurationError("ca_cert has no effect with verify=False; drop one of them")
        certs = list(client_cert) if isinstance(client_cert, tuple) else [client_cert]
        for f in [ca_cert, *certs]:
            if f is None:
                continue
            if not Path(f).is_file():
                raise ConfigurationError(f"TLS file {str(f)!r} does not exist")
        if policy is not None and not push:
            raise ConfigurationError(
                "push=False means OPA loads bundles: pass policy=None (or push=True)"
            )

        self.base_url = f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"
        self.timeout = float(timeout)
        self.admin_timeout = float(admin_timeout)
        self.push = push
        self.policy_prefix = policy_prefix
        self._token = token
        self._verify: bool | str = str(ca_cert) if ca_cert else verify
        self._client_cert: str | tuple[str, str] | None = (
            (str(client_cert[0]), str(client_cert[1])) if isinstance(client_cert, tuple)
            else str(client_cert) if client_cert else None
        )
        self._opa_client = _load_client()
        # retries=0: a decision is asked exactly once; the caller fails closed.
        self._client = self._opa_client.OpaClient(
            host=self.host, port=self.port, ssl=self.tls, cert=self._client_cert,
            token=token, retries=0, timeout=self.timeout,
        )
        self._session = self._client._session
        if self.tls:
            # OpaClient only knows ssl=True (system CAs); ca_cert/verify=False
            # are set on its requests session.
            self._session.verify = self._verify
        self._async: dict[asyncio.AbstractEventLoop, Any] = {}
        self._load_lock = threading.Lock()
        self._policy: PolicySet | None = None
        self._revision = ""
        self._pushed_data_keys: set[str] = set()
        if health_check:
            problem = self._check_health()
            if problem:
                raise ConfigurationError(problem)
        if policy is not None:
            self.load(policy)

    # -- properties ----------------------------------------------------------

    @property
    def revision(self) -> str:
        return self._revision

    @property
    def policy(self) -> PolicySet | None:
        """The policy last pushed (None when OPA serves bundles)."""
        return self._policy

    def __repr__(self) -> str:
        return f"OpaHttpEngine({self.base_url!r}, revision={self._revision!r})"

    # -- decisions -----------------------------------------------------------

    def _decision_url(self, path: str) -> str:
        return f"{self.base_url}/v1/data/{path.replace('.', '/')}"

    def _params(self) -> dict[str, str]:
        # Without a pushed policy, OPA's provenance names the bundle revision
        # that decided, at no extra round trip.
        return {} if self._policy is not None else {"provenance": "true"}

    def _prepare(self, path: str, input: Mapping[str, Any]) -> bytes | str:
        if not DECISION_PATH.match(path):
            return f"invalid decision path {path!r}"
        try:
            return json.dumps({"input": input}, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            return f"input is not JSON: {exc}"

    def _finish(
        self, path: str, did: str | None, start: int, status: int | None, payload: bytes,
        error: str | None,
    ) -> Decision:
        revision = self._revision
        kw: dict[str, Any] = {"revision": revision, "engine": self.name}

        def done(**more: Any) -> Decision:
            return Decision(
                path=path, decision_id=more.pop("decision_id", None) or did or new_decision_id(),
                eval_ns=time.perf_counter_ns() - start, **kw, **more,
            )

        if error is None and status != 200:
            error = (
                f"OPA at {self.base_url} answered HTTP {status} for POST /v1/data/"
                f"{path.replace('.', '/')}: {_describe_body(payload)}"
            )
        body: Any = None
        if error is None:
            try:
                body = json.loads(payload)
            except ValueError:
                error = f"OPA at {self.base_url} answered with a body that is not JSON"
        if error is None and not isinstance(body, dict):
            error = f"OPA at {self.base_url} answered with {type(body).__name__}, not an object"
        if error is not None:
            return done(outcome=Outcome.UNAVAILABLE, error=error)
        prov = body.get("provenance")
        bundles = prov.get("bundles") if isinstance(prov, dict) else None
        if isinstance(bundles, dict) and bundles:
            revs = {n: str(b.get("revision", "")) for n, b in bundles.items()
                    if isinstance(b, dict)}
            self._revision = kw["revision"] = (
                next(iter(revs.values())) if len(revs) == 1
                else ",".join(f"{n}={r}" for n, r in sorted(revs.items()))
            )
        opa_id = body.get("decision_id") if isinstance(body.get("decision_id"), str) else None
        if "result" not in body:
            return done(outcome=Outcome.UNDEFINED, decision_id=did or opa_id)
        return done(outcome=Outcome.VALUE, result=body["result"], decision_id=did or opa_id)

    def evaluate(
        self, path: str, input: Mapping[str, Any], *, decision_id: str | None = None
    ) -> Decision:
        start = time.perf_counter_ns()
        body = self._prepare(path, input)
        if isinstance(body, str):
            return self._finish(path, decision_id, start, None, b"", body)
        requests = self._requests()
        try:
            resp = self._session.post(
                self._decision_url(path), data=body, headers=_JSON, params=self._params(),
                timeout=self.timeout,
            )
            status, payload = resp.status_code, resp.content
        except requests.exceptions.RequestException as exc:
            return self._finish(path, decision_id, start, None, b"", self._explain(exc))
        return self._finish(path, decision_id, start, status, payload, None)

    async def aevaluate(
        self, path: str, input: Mapping[str, Any], *, decision_id: str | None = None
    ) -> Decision:
        start = time.perf_counter_ns()
        body = self._prepare(path, input)
        if isinstance(body, str):
            return self._finish(path, decision_id, start, None, b"", body)
        import aiohttp

        session = self._async_session()
        try:
            async with session.post(
                self._decision_url(path), data=body, headers=_JSON, params=self._params(),
            ) as resp:
                status, payload = resp.status, await resp.read()
        except TimeoutError:
            return self._finish(path, decision_id, start, None, b"", self._timed_out())
        except aiohttp.ClientSSLError as exc:
            return self._finish(path, decision_id, start, None, b"", self._tls_failed(exc))
        except aiohttp.ClientConnectorError as exc:
            return self._finish(path, decision_id, start, None, b"", self._refused(exc))
        except aiohttp.ClientError as exc:
            error = f"request to OPA at {self.base_url} failed: {type(exc).__name__}: {exc}"
            return self._finish(path, decision_id, start, None, b"", error)
        return self._finish(path, decision_id, start, status, payload, None)

    # -- errors, in words that say what to change ------------------------------

    def _timed_out(self) -> str:
        return (
            f"no answer from OPA at {self.base_url} within {self.timeout * 1000:g} ms "
            "(raise timeout= if OPA is just slow)"
        )

    def _refused(self, exc: BaseException) -> str:
        return (
            f"cannot connect to OPA at {self.base_url} ({_root_cause(exc)}); is OPA running "
            "there? check host and port in the engine URL"
        )

    def _tls_failed(self, exc: BaseException) -> str:
        return (
            f"TLS with OPA at {self.base_url} failed ({_root_cause(exc)}); set ca_cert= to the "
            "CA that signed OPA's certificate, or client_cert= if OPA requires mutual TLS"
        )

    def _explain(self, exc: BaseException) -> str:
        requests = self._requests()
        if isinstance(exc, requests.exceptions.Timeout):
            return self._timed_out()
        if isinstance(exc, requests.exceptions.SSLError):
            return self._tls_failed(exc)
        if isinstance(exc, requests.exceptions.ConnectionError):
            return self._refused(exc)
        return f"request to OPA at {self.base_url} failed: {type(exc).__name__}: {exc}"

    @staticmethod
    def _requests() -> Any:
        import requests

        return requests

    # -- health --------------------------------------------------------------

    def _check_health(self) -> str | None:
        requests = self._requests()
        try:
            resp = self._session.get(f"{self.base_url}/health", timeout=self.admin_timeout)
        except requests.exceptions.RequestException as exc:
            reason = self._explain(exc)
            return f"{reason}; or pass health_check=False to start without OPA"
        if resp.status_code in (401, 403):
            return (
                f"OPA at {self.base_url} refused the request (HTTP {resp.status_code}); "
                + ("set token= to a bearer token OPA accepts" if self._token is None else
                   "the token= given is not accepted by OPA")
            )
        if resp.status_code == 404:
            return f"{self.base_url}/health is not found: is this an OPA server?"
        if resp.status_code != 200:
            return (
                f"OPA at {self.base_url} is not healthy (HTTP {resp.status_code}: "
                f"{_describe_body(resp.content)}); check OPA's logs (bundles, plugins)"
            )
        return None

    def health(self) -> None:
        problem = self._check_health()
        if problem:
            raise EngineUnavailable(problem, engine=self.name)

    # -- loading -------------------------------------------------------------

    def _policy_id(self, module_path: str) -> str:
        return self.policy_prefix + module_path.lstrip("/")

    def _admin(self, method: str, path: str, **kw: Any) -> tuple[int, bytes]:
        """One admin request; an unreachable OPA raises EngineUnavailable."""
        requests = self._requests()
        try:
            resp = self._session.request(
                method, f"{self.base_url}{path}", timeout=self.admin_timeout, **kw
            )
        except requests.exceptions.RequestException as exc:
            raise EngineUnavailable(self._explain(exc), engine=self.name) from exc
        return resp.status_code, resp.content

    def _policy_url(self, pid: str) -> str:
        return "/v1/policies/" + quote(pid, safe="/")

    def _snapshot_policies(self) -> dict[str, str]:
        status, payload = self._admin("GET", "/v1/policies")
        if status != 200:
            raise EngineUnavailable(
                f"cannot list OPA's policies: HTTP {status}: {_describe_body(payload)}",
                engine=self.name,
            )
        return {p["id"]: p.get("raw", "") for p in json.loads(payload).get("result") or []}

    def _apply(self, ops: dict[str, str | None]) -> dict[str, bytes]:
        """PUT (text) or DELETE (None) policies until no more succeed.

        OPA compiles all modules on every change, so one that depends on
        another not yet pushed fails first and succeeds on a later round.

        Returns:
            the failing ids with OPA's last error body.
        """
        pending, failed = dict(ops), dict[str, bytes]()
        while pending:
            failed = {}
            for pid, text in pending.items():
                if text is None:
                    status, payload = self._admin("DELETE", self._policy_url(pid))
                    ok = status in (200, 204, 404)
                else:
                    status, payload = self._admin(
                        "PUT", self._policy_url(pid), data=text.encode(),
                        headers={"Content-Type": "text/plain"},
                    )
                    ok = status == 200
                if not ok:
                    failed[pid] = payload
            if len(failed) == len(pending):
                break
            pending = {pid: ops[pid] for pid in failed}
        return failed

    def _problems(self, failed: Mapping[str, bytes], id_to_path: Mapping[str, str]
                  ) -> list[PolicyProblem]:
        problems: list[PolicyProblem] = []
        for pid, payload in failed.items():
            shown = id_to_path.get(pid, pid)
            try:
                body = json.loads(payload)
            except ValueError:
                body = {}
            errors = body.get("errors") if isinstance(body, dict) else None
            if not errors:
                problems.append(PolicyProblem(shown, 1, 1, _describe_body(payload)))
                continue
            for err in errors:
                loc = err.get("location") or {}
                file = id_to_path.get(loc.get("file", ""), loc.get("file") or shown)
                problems.append(PolicyProblem(
                    file, int(loc.get("row") or 1), int(loc.get("col") or 1),
                    f"{err.get('code', 'error')}: {err.get('message', '')}",
                ))
        # Several modules may fail on the same root cause; report it once.
        return list(dict.fromkeys(problems))

    def _snapshot_data(self, key: str) -> tuple[bool, Any]:
        status, payload = self._admin("GET", f"/v1/data/{quote(key)}")
        body = json.loads(payload) if status == 200 else {}
        return ("result" in body, body.get("result"))

    def load(self, policy: PolicySet) -> None:
        """Push ``policy`` to OPA; on any failure restore what was there.

        Raises:
            ConfigurationError: this engine was built with ``push=False``.
            PolicyError: OPA rejected a module or a data document; the
                previous policy keeps serving.
            EngineUnavailable: OPA could not be reached.
        """
        if not self.push:
            raise ConfigurationError(
                "this OPA engine does not push policies (push=False); update OPA's bundles"
            )
        policy = policy.without_tests()
        with self._load_lock:
            self._push(policy)
            self._policy, self._revision = policy, policy.revision

    def _push(self, policy: PolicySet) -> None:
        before = self._snapshot_policies()
        id_to_path = {self._policy_id(m.path): m.path for m in policy.modules}
        wanted = {self._policy_id(m.path): m.text for m in policy.modules}
        ops: dict[str, str | None] = {
            pid: text for pid, text in wanted.items() if before.get(pid) != text
        }
        for pid in before:
            if pid.startswith(self.policy_prefix) and pid not in wanted:
                ops[pid] = None
        failed = self._apply(ops)
        if failed:
            problems = self._problems(failed, id_to_path)
            self._restore_policies(before, ops, problems)
            raise PolicyError(problems)

        data_before: dict[str, tuple[bool, Any]] = {}
        data_ops: dict[str, Any] = dict(policy.data)
        for key in self._pushed_data_keys - set(policy.data):
            data_ops[key] = _DELETE
        for key, value in data_ops.items():
            data_before[key] = self._snapshot_data(key)
            if value is _DELETE:
                status, payload = self._admin("DELETE", f"/v1/data/{quote(key)}")
                ok = status in (204, 404)
            else:
                status, payload = self._admin(
                    "PUT", f"/v1/data/{quote(key)}", data=json.dumps(value).encode(),
                    headers=_JSON,
                )
                ok = status == 204
            if not ok:
                problems = [PolicyProblem(
                    f"<data.{key}>", 1, 1,
                    f"OPA rejected data.{key} (HTTP {status}): {_describe_body(payload)}",
                )]
                self._restore_data(data_before, problems)
                self._restore_policies(before, ops, problems)
                raise PolicyError(problems)
        self._pushed_data_keys = set(policy.data)

    def _restore_policies(self, before: Mapping[str, str], ops: Mapping[str, Any],
                          problems: list[PolicyProblem]) -> None:
        undo = {pid: before.get(pid) for pid in ops}
        if self._apply(undo):
            problems.append(PolicyProblem(
                "<opa>", 1, 1,
                "could not restore the previous policy on OPA; it may serve a mix: "
                "fix the policy and load again",
            ))

    def _restore_data(self, before: Mapping[str, tuple[bool, Any]],
                      problems: list[PolicyProblem]) -> None:
        for key, (existed, value) in before.items():
            if existed:
                status, _ = self._admin(
                    "PUT", f"/v1/data/{quote(key)}", data=json.dumps(value).encode(),
                    headers=_JSON,
                )
            else:
                status, _ = self._admin("DELETE", f"/v1/data/{quote(key)}")
            if status not in (204, 404):
                problems.append(PolicyProblem(
                    f"<data.{key}>", 1, 1, "could not restore the previous data on OPA"
                ))

    # -- async side ----------------------------------------------------------

    def _async_session(self) -> Any:
        """The aiohttp session of the running loop (one pool per loop).

        aiohttp sessions are bound to the loop that created them, so an
        engine shared by several loops keeps one per loop.
        """
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is not None and not client._session.closed:
            return client._session
        import aiohttp

        # AsyncOpaClient builds headers and the token; its own session setup
        # knows neither a CA file nor verify=False, nor a per-call timeout,
        # so the session is built here and handed to the client.
        client = self._opa_client.AsyncOpaClient(
            host=self.host, port=self.port, ssl=self.tls, cert=self._client_cert,
            token=self._token, retries=0, timeout=self.timeout,
        )
        client._session = aiohttp.ClientSession(
            headers=client.headers,
            connector=aiohttp.TCPConnector(ssl=self._ssl_context()),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        )
        for old_loop in [lp for lp in self._async if lp.is_closed()]:
            _drop_session(self._async.pop(old_loop)._session)
        self._async[loop] = client
        return client._session

    def _ssl_context(self) -> ssl.SSLContext | bool:
        if not self.tls:
            return False
        ctx = ssl.create_default_context(
            cafile=self._verify if isinstance(self._verify, str) else None
        )
        if self._verify is False:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if isinstance(self._client_cert, tuple):
            ctx.load_cert_chain(*self._client_cert)
        elif self._client_cert:
            ctx.load_cert_chain(self._client_cert)
        return ctx

    async def aclose(self) -> None:
        """Close the connection pool of the running loop, then the rest."""
        client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client._session.close()
        self.close()

    def close(self) -> None:
        self._client.close_connection()
        for loop, client in list(self._async.items()):
            self._async.pop(loop, None)
            session = client._session
            if session.closed:
                continue
            if loop.is_closed() or loop.is_running():
                # A closed loop cannot run the coroutine; a running one is
                # another thread's (or ours, mid-callback): close the
                # transports synchronously in both cases.
                _drop_session(session)
            else:
                loop.run_until_complete(session.close())


_DELETE = object()


def _drop_session(session: Any) -> None:
    # aiohttp's public close() is a coroutine; its connector's _close() does
    # the same work synchronously, which is all a closed loop allows.
    connector = session.connector
    if connector is not None and not connector.closed:
        connector._close()


def _root_cause(exc: BaseException) -> str:
    """The innermost cause in a few words (requests/aiohttp nest them deeply)."""
    chain: list[BaseException] = [exc]
    while (nxt := chain[-1].__cause__ or chain[-1].__context__) is not None and len(chain) < 20:
        chain.append(nxt)
    os_error = getattr(exc, "os_error", None)  # aiohttp's ClientConnectorError
    if isinstance(os_error, BaseException):
        chain.append(os_error)
    text = " ".join(str(e) for e in chain)
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        return "connection refused"
    for marker in ("CERTIFICATE_VERIFY_FAILED", "Name or service not known", "timed out"):
        if marker in text:
            return marker.lower().replace("_", " ")
    return str(chain[-1]) or type(chain[-1]).__name__
