"""Guard a strawberry schema with one extension.

:class:`StrawberryGuard` checks its configuration once, then hands strawberry
an extension *class*: strawberry instantiates it per request, so all request
state lives on that instance (never on the shared guard).

* ``on_validate`` — strips "Did you mean …" suggestions for callers who may
  not learn the schema;
* ``on_execute`` — analyses the operation and asks the plan once; a refusal
  sets the result, so strawberry runs no resolver; the operation then runs on
  fieldguard's guarded executor (fields that need work run substituted
  resolvers, the rest run untouched: no per-field hook); afterwards quotas
  are charged and the audit record written (data is dropped if either fails).

The extension installs the guarded executor on the schema the first time it
runs (``schema.execution_context_class``; a custom class is extended, not
replaced). If an operation ever executes without it, the extension drops the
data and answers ``POLICY_UNDEFINED``: enforcement never silently lapses.

Tags come from ``policies/classification.yaml`` and, optionally, from code:
``strawberry.field(metadata={"fieldguard": {"tags": ["pii"]}})``.

Example:
    >>> import strawberry
    >>> from fieldguard.context import Caller, Client, Subject
    >>> from fieldguard.guard import Guard
    >>> from fieldguard.policies.source import PolicySet
    >>> rego = '''package fieldguard
    ... plan := {"allow": true, "outcome": "allow", "status": 200,
    ...   "fields": {f.coordinate: {"effect": "mask", "mask": "email"} | some f in input.fields}}
    ... '''
    >>> @strawberry.type
    ... class Query:
    ...     email: str = "ada@example.org"
    >>> fg = StrawberryGuard(Guard(policy=PolicySet.from_sources([("p.rego", rego)])),
    ...                      caller=lambda ctx: ctx)
    >>> schema = strawberry.Schema(query=Query, extensions=[fg.extension])
    >>> schema.execute_sync("{ email }", root_value=Query(),
    ...     context_value=Caller(Subject("u1"), Client("192.0.2.1"))).data
    {'email': 'a***@example.org'}
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import strawberry
from graphql import ExecutionResult, GraphQLError
from graphql.execution.values import get_variable_values
from strawberry.directive import DirectiveLocation
from strawberry.extensions import SchemaExtension

from fieldguard.context import Caller
from fieldguard.errors import ConfigurationError, FieldGuardError
from fieldguard.guard import Guard
from fieldguard.plugins.gql.analysis import AnalysisConfig, select_operation
from fieldguard.plugins.gql.errors import to_graphql_error
from fieldguard.plugins.gql.executor import ACTIVE, guarded_executor_class
from fieldguard.plugins.gql.runner import OperationRun, SchemaGuard

CallerFactory = Callable[[Any], Caller]
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


class StrawberryGuard:
    """Shared configuration of the strawberry integration.

    Args:
        guard: the enforcement configuration.
        caller: builds the :class:`Caller` from strawberry's context value.
        hide_introspection: hide coordinates the plan denies from introspection.
        hide_suggestions: strip "Did you mean …"; a bool or a function of the caller.
        analysis: analysis knobs.

    Raises:
        ConfigurationError: ``caller`` is not callable.
    """

    def __init__(
        self,
        guard: Guard,
        *,
        caller: CallerFactory,
        hide_introspection: bool = True,
        hide_suggestions: bool | Callable[[Caller], bool] = True,
        analysis: AnalysisConfig | None = None,
    ) -> None:
        if not callable(caller):
            raise ConfigurationError("caller must be a function of the context value")
        self.guard = guard
        self.caller = caller
        self.hide_introspection = hide_introspection
        self.hide_suggestions = hide_suggestions
        self.analysis = analysis or AnalysisConfig()
        self._shared: dict[int, SchemaGuard] = {}

    def shared_for(self, graphql_schema: Any) -> SchemaGuard:
        """The per-schema state (annotations read once per schema)."""
        key = id(graphql_schema)
        shared = self._shared.get(key)
        if shared is None or shared.schema is not graphql_schema:
            shared = SchemaGuard(self.guard, graphql_schema,
                                 hide_introspection=self.hide_introspection,
                                 analysis=self.analysis)
            self._shared[key] = shared
        return shared

    def hides_suggestions(self, caller: Caller | None) -> bool:
        """Whether this caller's errors lose their suggestions."""
        policy = self.hide_suggestions
        if isinstance(policy, bool):
            return policy
        return True if caller is None else bool(policy(caller))

    @property
    def extension(self) -> type[SchemaExtension]:
        """The extension class to pass in ``strawberry.Schema(extensions=[…])``
        (sync and async execution)."""
        config = self

        class FieldGuardExtension(_FieldGuardExtension):
            fieldguard = config

        return FieldGuardExtension

    @property
    def async_extension(self) -> type[SchemaExtension]:
        """The extension class for schemas executed only asynchronously
        (``await schema.execute``, ASGI servers): the plan, the quota round
        trips and the audit write are awaited, so the event loop serves other
        requests meanwhile. Strawberry refuses it under ``execute_sync``."""
        config = self

        class AsyncFieldGuardExtension(_AsyncFieldGuardExtension):
            fieldguard = config

        return AsyncFieldGuardExtension


class _FieldGuardExtension(SchemaExtension):
    """Per-request extension; configured subclasses come from StrawberryGuard."""

    fieldguard: StrawberryGuard

    def __init__(self, *, execution_context: Any = None) -> None:
        self._context: Any = None
        super().__init__(execution_context=execution_context)
        self.run: OperationRun | None = None
        self.caller: Caller | None = None
        self.streaming = False  # a subscription: events follow on_execute
        self.finished = False

    @property
    def execution_context(self) -> Any:
        return self._context

    @execution_context.setter
    def execution_context(self, value: Any) -> None:
        # Strawberry hands each request's extensions its execution context
        # before it reads ``schema.execution_context_class`` (for
        # subscriptions, before any hook runs): install the guarded executor
        # here so even the first operation on a schema runs guarded.
        self._context = value
        schema = getattr(value, "schema", None)
        if schema is not None:
            _install_executor(schema)

    def _refuse(self, errors: list[GraphQLError]) -> None:
        extensions = self.run.extensions() if self.run else None
        self.execution_context.result = ExecutionResult(None, errors, extensions)

    def _get_caller(self) -> Caller:
        made = self.fieldguard.caller(self.execution_context.context)
        if not isinstance(made, Caller):
            raise ConfigurationError("the caller function must return a fieldguard Caller")
        return made

    def on_validate(self) -> Iterator[None]:
        yield
        ctx = self.execution_context
        errors = ctx.pre_execution_errors
        if not errors:
            return
        try:
            caller = self._get_caller()
        except FieldGuardError:
            caller = None
        if self.fieldguard.hides_suggestions(caller):
            for err in errors:
                err.message = _SUGGESTION.sub("", err.message)
                err.args = (err.message,)

    def on_execute(self) -> Iterator[None]:
        ready, run = self._ready(), self.run
        if ready is not None and run is not None:
            self._started(run.start(*ready))
        token = ACTIVE.set(self.run.enforcer if self.run is not None else None)
        try:
            yield
        finally:
            ACTIVE.reset(token)
        step, run = self._after(), self.run
        if step is not None and run is not None:
            done, result = step
            self._deliver(result, run.fail(done) if isinstance(done, GraphQLError)
                          else run.finish(done))

    def _ready(self) -> tuple[Any, str | None, Any] | None:
        """Caller, operation and variables checked and a run created: the
        arguments of its ``start``; None when the request is refused."""
        ctx = self.execution_context
        schema = ctx.schema._schema
        shared = self.fieldguard.shared_for(schema)
        _install_executor(ctx.schema)
        try:
            self.caller = self._get_caller()
            op = select_operation(ctx.graphql_document, ctx.operation_name)
        except FieldGuardError as exc:
            self._refuse([to_graphql_error(exc)])
            return None
        coerced = get_variable_values(
            schema, op.variable_definitions or (), ctx.variables or {},
            hide_suggestions=self.fieldguard.hides_suggestions(self.caller),
        )
        if isinstance(coerced, list):
            for err in coerced:
                err.extensions = {**(err.extensions or {}), "code": "BAD_USER_INPUT"}
            self._refuse(coerced)
            return None
        self.run = shared.run(self.caller)
        return ctx.graphql_document, ctx.operation_name, coerced

    def _started(self, refusal: list[GraphQLError] | None) -> None:
        if refusal:
            self._refuse(refusal)
            self.run = None

    def _after(self) -> tuple[GraphQLError | ExecutionResult, ExecutionResult] | None:
        """After execution: what to finish the run with (the result, or the
        error replacing it) and the result to update; None for nothing."""
        result = self.execution_context.result
        if self.run is None:
            return None
        if not isinstance(result, ExecutionResult):
            self.streaming = True  # a subscription: audited when it ends
            return None
        enforcer = self.run.enforcer
        if enforcer is not None and not enforcer.bound and result.data is not None:
            # Executed by something other than the guarded executor: nothing
            # it produced was checked, so none of it leaves.
            return to_graphql_error(_NO_PLAN), result
        return result, result

    def _deliver(self, result: ExecutionResult, finished: ExecutionResult) -> None:
        # Mutate in place: strawberry's async path returns the object it
        # holds, not ``ctx.result``, after the extensions unwind.
        result.data, result.errors = finished.data, finished.errors
        self.finished = True

    def on_stream_result(self, result: Any) -> Iterator[None]:
        run = self.run
        enforcer = run.enforcer if run is not None else None
        if self.streaming and enforcer is not None:
            if not enforcer.bound and result.data is not None:
                result.data = None
                result.errors = [to_graphql_error(_NO_PLAN)]
            withheld = enforcer.take_errors()
            if withheld:
                result.errors = [*(result.errors or []), *withheld]
        yield

    def on_operation(self) -> Iterator[None]:
        yield
        if self._stream_ended() and self.run is not None:
            self.run.finish(ExecutionResult(None, None))  # the stream ended: audit it

    def _stream_ended(self) -> bool:
        """True once, when a subscription's stream ended: audit it now."""
        if self.run is not None and self.streaming and not self.finished:
            self.finished = True
            return True
        return False

    def get_results(self) -> dict[str, Any]:
        if self.run is None:
            return {}
        return self.run.extensions()


class _AsyncFieldGuardExtension(_FieldGuardExtension):
    """The extension for async execution: the plan, the quota round trips and
    the audit write are awaited instead of blocking the event loop."""

    async def on_execute(self) -> AsyncIterator[None]:  # type: ignore[override]
        ready, run = self._ready(), self.run
        if ready is not None and run is not None:
            self._started(await run.astart(*ready))
        token = ACTIVE.set(self.run.enforcer if self.run is not None else None)
        try:
            yield
        finally:
            ACTIVE.reset(token)
        step, run = self._after(), self.run
        if step is not None and run is not None:
            done, result = step
            self._deliver(result, await run.afail(done) if isinstance(done, GraphQLError)
                          else await run.afinish(done))

    async def on_operation(self) -> AsyncIterator[None]:  # type: ignore[override]
        yield
        if self._stream_ended() and self.run is not None:
            await self.run.afinish(ExecutionResult(None, None))


class _NoPlan(FieldGuardError):
    code = "POLICY_UNDEFINED"
    http_status = 503


_NO_PLAN = _NoPlan("the operation ran outside fieldguard's guarded executor")


def _install_executor(schema: Any) -> None:
    """Make ``schema`` (a strawberry Schema) execute on the guarded executor
    (idempotent; a custom executor class is extended, not replaced)."""
    current = getattr(schema, "execution_context_class", None)
    guarded = guarded_executor_class(current)
    if guarded is not current:
        schema.execution_context_class = guarded


@strawberry.directive(
    locations=[DirectiveLocation.QUERY, DirectiveLocation.MUTATION,
               DirectiveLocation.SUBSCRIPTION],
    name="purpose",
    description="The purpose of processing this operation serves (policy-checked).",
)
def purpose_directive(name: str) -> None:
    """``@purpose(name: "support")`` on an operation; pass it in
    ``strawberry.Schema(directives=[purpose_directive])``. fieldguard reads it
    before execution; the policy decides whether the caller may use it."""


class QuietDenials:
    """A logging filter for strawberry's ``strawberry.execution`` logger that
    drops records of policy denials (strawberry logs every field error with a
    traceback; a denial is an expected outcome, and it is in the audit log).

    Example:
        >>> import logging
        >>> logging.getLogger("strawberry.execution").addFilter(QuietDenials())
    """

    codes = frozenset({"FORBIDDEN", "RATE_LIMITED", "CHALLENGE_REQUIRED", "BAD_REQUEST"})

    def filter(self, record: Any) -> bool:
        """Keep the record unless it carries a fieldguard denial."""
        err = record.msg
        ext = getattr(err, "extensions", None)
        return not (isinstance(ext, dict) and ext.get("code") in self.codes)
