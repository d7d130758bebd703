"""The demo API: the strawberry social network over ASGI, guarded by the
shipped policies on the embedded engine, with quotas and an audit log.

Identity is a demo stand-in: ``Authorization: Bearer <token>`` picks one of
the accounts in :data:`ACCOUNTS` (a real app verifies a JWT and builds the
:class:`~fieldguard.context.Subject` from its claims). ``X-Purpose`` states
the purpose, ``X-Client-App`` the API client. ``X-Forwarded-For`` is trusted
only when the app is built with ``trust_forwarded=True`` (tests that simulate
callers from many addresses on loopback).

Example:
    >>> app = create_app(users=5)
    >>> app.guard.engine.name
    'regorus'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, process_result
from strawberry.types import ExecutionResult

from fieldguard.audit import AuditSink, JsonLinesSink
from fieldguard.context import Caller, Client, Subject
from fieldguard.demo.context import DemoContext, caller_of
from fieldguard.demo.data import Store
from fieldguard.demo.strawberry_schema import World, build_schema
from fieldguard.guard import Guard
from fieldguard.plugins.gql.errors import http_status
from fieldguard.plugins.strawberry import StrawberryGuard

ACCOUNTS: dict[str, Subject] = {
    "alice": Subject("u2", account_age_days=400),
    "victor": Subject("u4", account_age_days=900, verified=True),
    "newbie": Subject("u8", account_age_days=3),
    "sam-support": Subject("u9", roles=("support",), account_age_days=700),
    "mo-moderator": Subject("u10", roles=("moderator",), account_age_days=700),
}


def caller_from_request(request: Request, *, trust_forwarded: bool = False) -> Caller:
    """Build the caller from demo headers (see module docs)."""
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    subject = ACCOUNTS.get(token, Subject.anonymous())
    ip = request.client.host if request.client else "0.0.0.0"  # noqa: S104
    forwarded = request.headers.get("x-forwarded-for")
    if trust_forwarded and forwarded:
        ip = forwarded.split(",")[0].strip()
    return Caller(subject, Client(ip, app=request.headers.get("x-client-app"),
                                  user_agent=request.headers.get("user-agent", "")),
                  purpose=request.headers.get("x-purpose"),
                  request_id=request.headers.get("x-request-id"))


class GuardedGraphQL(GraphQL[DemoContext, None]):
    """strawberry's ASGI app, answering refusals with their HTTP status."""

    def __init__(self, schema: Any, world: World, guard: Guard, *,
                 trust_forwarded: bool = False) -> None:
        super().__init__(schema)
        self.world = world
        self.guard = guard
        self.trust_forwarded = trust_forwarded

    async def get_context(self, request: Any, response: Any) -> DemoContext:
        request.state.fieldguard_response = response
        return DemoContext(caller_from_request(request, trust_forwarded=self.trust_forwarded),
                           self.world)

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        status, headers = http_status(result.data, result.errors)
        ratelimit = ((result.extensions or {}).get("fieldguard") or {}).get("ratelimit")
        response = getattr(request.state, "fieldguard_response", None)
        if response is not None:
            if status != 200:
                response.status_code = status
            response.headers.update(headers)
            if isinstance(ratelimit, dict):
                response.headers.update(ratelimit)
        return process_result(result)


def create_app(
    *,
    users: int = 200,
    engine: str = "regorus://",
    limiter: Any = "memory://",
    audit: AuditSink | str | Path | None = None,
    trust_forwarded: bool = False,
    rego_dir: str = "rego",
    data_dir: str = "policies",
) -> GuardedGraphQL:
    """The guarded demo app.

    Args:
        users: how many demo users to generate.
        engine: engine URL.
        limiter: quota storage URL or Limiter (None: no quotas).
        audit: a sink, or a path for a JSON Lines audit log.
        trust_forwarded: take the client address from X-Forwarded-For.
        rego_dir, data_dir: the policies to serve.
    """
    sink = JsonLinesSink(audit) if isinstance(audit, str | Path) else audit
    guard = Guard(engine, rego_dir=rego_dir, data_dir=data_dir, audit=sink, limiter=limiter)
    # An ASGI app executes asynchronously: the async extension awaits the
    # plan, the quota round trips and the audit write.
    schema = build_schema([StrawberryGuard(guard, caller=caller_of).async_extension])
    return GuardedGraphQL(schema, World(Store.generate(users=users)), guard,
                          trust_forwarded=trust_forwarded)
