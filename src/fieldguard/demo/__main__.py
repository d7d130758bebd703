"""``python -m fieldguard.demo``: the demo API, guarded, and a tour of it.

Starts the guarded social network on a loopback port (uvicorn), then walks
through what fieldguard does over real HTTP: who sees which fields, masking
for support staff, static caps, and an anonymous scraper cut off by its
quota. ``--serve`` keeps serving instead (try it with curl or GraphiQL).
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from fieldguard.demo.app import create_app
from fieldguard.plugins.strawberry import QuietDenials


def _serve(app: Any, sock: socket.socket) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    return server, thread


def _show(title: str, response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    print(f"\n== {title}")
    print(f"   HTTP {response.status_code}"
          + (f"  Retry-After: {response.headers['retry-after']}"
             if "retry-after" in response.headers else ""))
    if body.get("data") is not None:
        print("   data:", json.dumps(body["data"])[:400])
    for err in (body.get("errors") or [])[:3]:
        ext = err.get("extensions", {})
        print(f"   error {ext.get('code')}: {err['message'][:110]}")
    return body


def tour(base: str, audit_path: Path) -> int:
    """Run the scripted requests; return 0 when every expectation held."""
    failures = 0

    def expect(ok: bool, what: str) -> None:
        nonlocal failures
        print(f"   {'ok ' if ok else 'FAILED'}: {what}")
        failures += 0 if ok else 1

    q = "{ users(first: 5) { id handle email phone } }"
    with httpx.Client(base_url=base, timeout=10) as http:
        def post(query: str, token: str | None = None, **headers: str) -> httpx.Response:
            hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
            if token:
                hdrs["authorization"] = f"Bearer {token}"
            return http.post("/graphql", json={"query": query}, headers=hdrs)

        body = _show("anonymous caller reads profiles", post(q))
        users = body["data"]["users"]
        expect(all(u["email"] is None for u in users), "anonymous callers get no contact data")

        body = _show("alice (a member) reads profiles: each user's own privacy settings",
                     post(q, "alice"))
        emails = {u["id"]: u["email"] for u in body["data"]["users"]}
        expect(emails.get("u2") is not None and emails.get("u6") is None,
               "u2 shares email with everyone, u6 with nobody")
        expect("u3" not in emails, "u3's private profile is not listed")

        body = _show("sam (support) with X-Purpose: support sees contact data masked",
                     post(q, "sam-support", x_purpose="support"))
        expect(all("***@" in (u["email"] or "***@") for u in body["data"]["users"]),
               "emails are masked for support")

        body = _show("alice asks for moderation notes (internal)",
                     post('{ user(id: "u5") { handle moderationNotes } }', "alice"))
        expect(body["data"]["user"]["moderationNotes"] is None, "internal field withheld")

        body = _show("a page-size bomb is refused before anything runs",
                     post("{ users(first: 5000) { id } }", "alice"))
        expect(body.get("data") is None, "refused with 400")

        print("\n== an anonymous scraper pages through every profile")
        fetched, after, status = 0, None, 200
        for _ in range(50):
            cursor = f', after: "{after}"' if after else ""
            r = post(f"{{ users(first: 20{cursor}) {{ id handle }} }}")
            status = r.status_code
            if status != 200:
                _show("scraper is cut off", r)
                break
            page = r.json()["data"]["users"]
            if not page:
                break
            fetched += len(page)
            after = page[-1]["id"]
        print(f"   scraper fetched {fetched} profiles before HTTP {status}")
        expect(status == 429 and fetched <= 100, "cut off at the anonymous daily record quota")

    records = [json.loads(line) for line in audit_path.read_text().splitlines()]
    print(f"\n== audit log: {len(records)} records in {audit_path}")
    last = records[-1]
    print(f"   last: decision {last['decision_id']} outcome={last['outcome']} "
          f"revision={last['bundles']['fieldguard']['revision']}")
    expect(len(records) >= 6, "one audit record per decided operation")
    print(f"\n{'all expectations held' if not failures else f'{failures} expectation(s) failed'}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point (see module docs)."""
    parser = argparse.ArgumentParser(prog="python -m fieldguard.demo")
    parser.add_argument("--serve", action="store_true", help="serve until interrupted")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free)")
    parser.add_argument("--engine", default="regorus://", help="engine URL")
    parser.add_argument("--audit", type=Path, help="audit log path (default: a temp file)")
    args = parser.parse_args(argv)
    logging.getLogger("strawberry.execution").addFilter(QuietDenials())
    audit = args.audit or Path(tempfile.mkdtemp(prefix="fieldguard-demo-")) / "audit.jsonl"
    app = create_app(engine=args.engine, audit=audit)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server, thread = _serve(app, sock)
    print(f"fieldguard demo: guarded GraphQL API at {base}/graphql "
          f"(engine {app.guard.engine.name}, policy {app.guard.engine.revision})")
    try:
        if args.serve:
            print("serving; Ctrl-C to stop")
            while True:
                time.sleep(3600)
        return tour(base, audit)
    except KeyboardInterrupt:
        return 0
    finally:
        server.should_exit = True
        # Let the server thread end by itself: its embedded-engine interpreter
        # must be dropped on that thread, not during interpreter shutdown.
        thread.join(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
