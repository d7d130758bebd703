"""One guarded GraphQL operation, from plan to audit record.

Both plugins drive the same :class:`OperationRun`: ``start`` analyses the
validated operation and asks the plan (refusals become GraphQL errors and run
no resolver); the run's :attr:`~OperationRun.enforcer` guards every field;
``finish`` charges quotas (settling the reservation the plan's ``decide``
made) and writes the audit record, and drops the data if either fails, so
nothing leaves the API unaudited or uncounted; a dropped response gives its
reservation back (see :meth:`fieldguard.guard.Session.release`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from typing import Any

from graphql import ExecutionResult, GraphQLError, GraphQLSchema

from fieldguard.context import Caller
from fieldguard.errors import BadRequest, FieldGuardError
from fieldguard.guard import Guard, Session
from fieldguard.plugins.gql.analysis import (
    AnalysisConfig,
    Annotations,
    analyze,
    operation_purpose,
    select_operation,
)
from fieldguard.plugins.gql.enforcer import FieldEnforcer
from fieldguard.plugins.gql.errors import to_graphql_error


class SchemaGuard:
    """What a guarded schema shares across requests (read-only after init).

    Args:
        guard: the enforcement configuration.
        schema: the graphql-core schema (strawberry: ``schema._schema``).
        hide_introspection: hide coordinates the plan denies to this caller
            from introspection results.
        analysis: analysis knobs.
    """

    def __init__(
        self,
        guard: Guard,
        schema: GraphQLSchema,
        *,
        hide_introspection: bool = True,
        analysis: AnalysisConfig | None = None,
    ) -> None:
        self.guard = guard
        self.schema = schema
        self.annotations = Annotations(schema)
        self.analysis = analysis or AnalysisConfig()
        self.hide_introspection = hide_introspection

    def run(self, caller: Caller) -> OperationRun:
        """A new run (per request)."""
        return OperationRun(self, self.guard.session(caller))


class OperationRun:
    """The per-request state of one guarded operation."""

    def __init__(self, shared: SchemaGuard, session: Session) -> None:
        self.shared = shared
        self.session = session
        self.enforcer: FieldEnforcer | None = None
        self.cost = 0

    def start(self, document: Any, operation_name: str | None,
              variables: Any) -> list[GraphQLError] | None:
        """Analyse and plan; errors to return instead of executing, or None.

        ``variables`` are the coerced variable values.
        """
        try:
            op = self._analyse(document, operation_name, variables)
            plan = self.session.decide(op)
        except FieldGuardError as exc:
            self._audit_refusal(exc)
            return [to_graphql_error(exc)]
        self._enforce(op, plan)
        return None

    async def astart(self, document: Any, operation_name: str | None,
                     variables: Any) -> list[GraphQLError] | None:
        """Async :meth:`start`: the plan and the quota round trips are
        awaited, so the event loop serves other requests meanwhile."""
        try:
            op = self._analyse(document, operation_name, variables)
            plan = await self.session.adecide(op)
        except FieldGuardError as exc:
            await self._aaudit_refusal(exc)
            return [to_graphql_error(exc)]
        self._enforce(op, plan)
        return None

    def _analyse(self, document: Any, operation_name: str | None, variables: Any) -> Any:
        shared = self.shared
        self._apply_purpose(document, operation_name, variables)
        op = analyze(shared.schema, document, operation_name, variables,
                     shared.annotations, shared.analysis)
        self.cost = int(op.complexity.get("cost", 0))
        if op.introspection and shared.hide_introspection:
            fields = dict.fromkeys(shared.annotations.coordinates, 0)
            fields.update(op.fields)
            op.fields = fields
        return op

    def _enforce(self, op: Any, plan: Any) -> None:
        shared = self.shared
        hidden: set[str] = set()
        if op.introspection and shared.hide_introspection:
            hidden = {c for c in shared.annotations.coordinates
                      if plan.effect(c).effect == "deny"}
        self.enforcer = FieldEnforcer(self.session, shared.schema, hidden)

    def _apply_purpose(self, document: Any, operation_name: str | None,
                       variables: Any) -> None:
        declared = operation_purpose(select_operation(document, operation_name), variables)
        if declared is None:
            return
        caller = self.session.caller
        if caller.purpose is not None and caller.purpose != declared:
            raise BadRequest(f"the operation declares purpose {declared!r} but the request "
                             f"declares {caller.purpose!r}")
        # The policy still decides whether this caller may use the purpose.
        self.session.caller = dataclasses.replace(caller, purpose=declared)

    def _audit_refusal(self, exc: FieldGuardError) -> None:
        # The request is refused anyway; a sink failure is in its own log.
        with contextlib.suppress(FieldGuardError):
            self.session.finish(self._refusal_outcome(exc))

    async def _aaudit_refusal(self, exc: FieldGuardError) -> None:
        with contextlib.suppress(FieldGuardError):
            await self.session.afinish(self._refusal_outcome(exc))

    def _refusal_outcome(self, exc: FieldGuardError) -> str:
        # The plan's outcome; ``throttle`` when it allowed but the quota
        # reservation was refused; the error code when there is no plan.
        return self.session.outcome or exc.code.lower()

    def finish(self, result: ExecutionResult) -> ExecutionResult:
        """Charge quotas and audit; an error replaces the data if either fails."""
        errors, rejected = self._collect(result)
        if rejected is not None:
            return self.fail(rejected)
        try:
            self.session.charge(self.cost)
            self.session.finish()
        except FieldGuardError as exc:
            self.session.errors.append(exc.code)
            return self.fail(to_graphql_error(exc))
        return self._result(result, errors)

    async def afinish(self, result: ExecutionResult) -> ExecutionResult:
        """Async :meth:`finish` (quota round trips and audit writes awaited)."""
        errors, rejected = self._collect(result)
        if rejected is not None:
            return await self.afail(rejected)
        try:
            await self.session.acharge(self.cost)
            await self.session.afinish()
        except FieldGuardError as exc:
            self.session.errors.append(exc.code)
            return await self.afail(to_graphql_error(exc))
        return self._result(result, errors)

    def _collect(self, result: ExecutionResult) -> tuple[list[GraphQLError],
                                                         GraphQLError | None]:
        """The response's errors with the withheld values' (the tallies
        folded into the exposure), and the error that fails the request
        when an objects decision failed under ``FailMode.REJECT``."""
        errors: list[GraphQLError] = list(result.errors or [])
        enforcer = self.enforcer
        if enforcer is None:
            return errors, None
        errors.extend(enforcer.take_errors())
        enforcer.flush()
        rejected = enforcer.rejected
        return errors, None if rejected is None else to_graphql_error(rejected)

    def _result(self, result: ExecutionResult, errors: list[GraphQLError]) -> ExecutionResult:
        if self.session.truncated:
            errors.append(GraphQLError(
                f"record quota reached: {self.session.truncated} record(s) withheld",
                extensions={"code": "RATE_LIMITED", "withheld": self.session.truncated}))
        extensions = dict(result.extensions or {})
        extensions.update(self.extensions())
        return ExecutionResult(result.data, errors or None, extensions)

    def fail(self, error: GraphQLError) -> ExecutionResult:
        """Drop the data: ``error`` instead, audited as an error."""
        with contextlib.suppress(FieldGuardError):
            self.session.finish("error")
        return self._failed(error)

    async def afail(self, error: GraphQLError) -> ExecutionResult:
        """Async :meth:`fail`."""
        with contextlib.suppress(FieldGuardError):
            await self.session.afinish("error")
        return self._failed(error)

    def _failed(self, error: GraphQLError) -> ExecutionResult:
        return ExecutionResult(None, [error], self.extensions())

    def extensions(self) -> dict[str, Any]:
        """Response extensions: the decision id, the policy revision, the
        query cost with the throttle status, and rate-limit headers for HTTP
        layers to copy."""
        session = self.session
        ext: dict[str, Any] = {"fieldguard": {"decision_id": session.decision_id,
                                              "revision": self.shared.guard.engine.revision}}
        if session.plan is not None:
            ext["cost"] = session.cost_status(self.cost)
            ext["cost"]["throttled"] = session.outcome == "throttle"
            headers = session.rate_limit_headers()
            if headers:
                ext["fieldguard"]["ratelimit"] = headers
        return ext


def refused(errors: Sequence[GraphQLError], run: OperationRun | None = None) -> ExecutionResult:
    """The result of an operation refused before execution."""
    return ExecutionResult(None, list(errors), run.extensions() if run else None)
