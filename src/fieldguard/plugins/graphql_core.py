"""Guard a plain graphql-core schema.

:class:`GraphQLGuard` replaces ``graphql()`` / ``graphql_sync()``: it parses
with token limits, validates (without "Did you mean …" suggestions for callers
who may not learn the schema), asks the plan once, executes with the
guarded executor (``fieldguard.plugins.gql.executor``: fields that need
work run substituted resolvers, the rest run untouched), then charges quotas
and writes the audit record.

Example:
    >>> from graphql import build_schema
    >>> from fieldguard.context import Caller, Client, Subject
    >>> from fieldguard.guard import Guard
    >>> from fieldguard.policies.source import PolicySet
    >>> rego = '''package fieldguard
    ... effect(c) := "deny" if c == "User.email"
    ... effect(c) := "allow" if c != "User.email"
    ... plan := {"allow": true, "outcome": "allow", "status": 200, "fields":
    ...   {f.coordinate: {"effect": effect(f.coordinate)} | some f in input.fields}}
    ... '''
    >>> guard = Guard(policy=PolicySet.from_sources([("p.rego", rego)]))
    >>> schema = build_schema("type Query { me: User } type User { name: String email: String }")
    >>> gg = GraphQLGuard(guard, schema, caller=lambda ctx: ctx)
    >>> me = {"name": "Ada", "email": "ada@example.org"}
    >>> result = gg.execute_sync("{ me { name email } }", root_value={"me": me},
    ...     context_value=Caller(Subject("u1"), Client("192.0.2.1")))
    >>> result.data, result.errors[0].extensions["code"]
    ({'me': {'name': 'Ada', 'email': None}}, 'FORBIDDEN')
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    execute,
    parse,
    subscribe,
    validate,
)
from graphql.execution.values import get_variable_values

from fieldguard.context import Caller
from fieldguard.errors import BadRequest, ConfigurationError, FieldGuardError
from fieldguard.guard import Guard
from fieldguard.plugins.gql.analysis import AnalysisConfig, select_operation
from fieldguard.plugins.gql.errors import to_graphql_error
from fieldguard.plugins.gql.executor import guarded_executor_class
from fieldguard.plugins.gql.runner import OperationRun, SchemaGuard, refused

CallerFactory = Callable[[Any], Caller]
SuggestionPolicy = bool | Callable[[Caller], bool]


def _bad(message: str, code: str = "BAD_REQUEST") -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


class GraphQLGuard:
    """A guarded graphql-core schema.

    Args:
        guard: the enforcement configuration.
        schema: the schema to guard.
        caller: builds the :class:`Caller` from the request's context value.
        hide_introspection: hide denied coordinates from introspection.
        hide_suggestions: strip "Did you mean …" from errors; True, False or
            a function of the caller (e.g. ``lambda c: "developer" not in
            c.subject.roles``).
        max_tokens: refuse documents with more tokens (parser limit).
        analysis: analysis knobs (page-size arguments, default list size…).

    Raises:
        ConfigurationError: ``caller`` is not callable, or limits are not positive.
    """

    def __init__(
        self,
        guard: Guard,
        schema: GraphQLSchema,
        *,
        caller: CallerFactory,
        hide_introspection: bool = True,
        hide_suggestions: SuggestionPolicy = True,
        max_tokens: int = 2000,
        analysis: AnalysisConfig | None = None,
    ) -> None:
        if not callable(caller):
            raise ConfigurationError("caller must be a function of the context value")
        if max_tokens <= 0:
            raise ConfigurationError("max_tokens must be positive")
        self.shared = SchemaGuard(guard, schema, hide_introspection=hide_introspection,
                                  analysis=analysis)
        self.schema = schema
        self.caller = caller
        self.hide_suggestions = hide_suggestions
        self.max_tokens = max_tokens

    def _hide(self, caller: Caller | None) -> bool:
        policy = self.hide_suggestions
        if isinstance(policy, bool):
            return policy
        return True if caller is None else bool(policy(caller))

    def _caller(self, context_value: Any, caller: Caller | None) -> Caller:
        if caller is not None:
            return caller
        made = self.caller(context_value)
        if not isinstance(made, Caller):
            raise ConfigurationError("the caller function must return a fieldguard Caller")
        return made

    def _check(
        self,
        source: str | DocumentNode,
        context_value: Any,
        caller: Caller | None,
        variable_values: dict[str, Any] | None,
        operation_name: str | None,
    ) -> tuple[OperationRun, DocumentNode, Any] | ExecutionResult:
        """Caller, parse, validation and variables: a run ready to start, or
        the result refusing the request."""
        try:
            who = self._caller(context_value, caller)
        except FieldGuardError as exc:
            return refused([to_graphql_error(exc)])
        hide = self._hide(who)
        if isinstance(source, DocumentNode):
            document = source
        else:
            try:
                document = parse(source, max_tokens=self.max_tokens)
            except GraphQLError as exc:
                return refused([_bad(exc.message, "GRAPHQL_PARSE_FAILED")])
            except RecursionError:
                return refused([_bad("query is nested too deeply", "GRAPHQL_PARSE_FAILED")])
        errors = validate(self.schema, document, hide_suggestions=hide)
        if errors:
            for err in errors:
                err.extensions = {**(err.extensions or {}), "code": "GRAPHQL_VALIDATION_FAILED"}
            return refused(errors)
        try:
            op = select_operation(document, operation_name)
        except BadRequest as exc:
            return refused([to_graphql_error(exc)])
        if variable_values is not None and not isinstance(variable_values, dict):
            return refused([_bad("variables must be an object")])
        coerced = get_variable_values(self.schema, op.variable_definitions or (),
                                      variable_values or {}, hide_suggestions=hide)
        if isinstance(coerced, list):
            for err in coerced:
                err.extensions = {**(err.extensions or {}), "code": "BAD_USER_INPUT"}
            return refused(coerced)
        return self.shared.run(who), document, coerced

    def prepare(
        self,
        source: str | DocumentNode,
        *,
        context_value: Any = None,
        caller: Caller | None = None,
        variable_values: dict[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> tuple[OperationRun, DocumentNode, Any] | ExecutionResult:
        """Everything before execution; an ExecutionResult means "refused"."""
        checked = self._check(source, context_value, caller, variable_values, operation_name)
        if isinstance(checked, ExecutionResult):
            return checked
        run, document, coerced = checked
        refusal = run.start(document, operation_name, coerced)
        return refused(refusal, run) if refusal else checked

    async def aprepare(
        self,
        source: str | DocumentNode,
        *,
        context_value: Any = None,
        caller: Caller | None = None,
        variable_values: dict[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> tuple[OperationRun, DocumentNode, Any] | ExecutionResult:
        """Async :meth:`prepare`: the plan and quota round trips are awaited."""
        checked = self._check(source, context_value, caller, variable_values, operation_name)
        if isinstance(checked, ExecutionResult):
            return checked
        run, document, coerced = checked
        refusal = await run.astart(document, operation_name, coerced)
        return refused(refusal, run) if refusal else checked

    def _execute(self, prepared: tuple[OperationRun, DocumentNode, Any], root_value: Any,
                 context_value: Any, variable_values: dict[str, Any] | None,
                 operation_name: str | None) -> Any:
        run, document, _ = prepared
        return execute(
            self.schema, document, root_value=root_value, context_value=context_value,
            variable_values=variable_values, operation_name=operation_name,
            executor_class=guarded_executor_class(None), fieldguard=run.enforcer,
            hide_suggestions=self._hide(run.session.caller),
        )

    def execute_sync(
        self,
        source: str | DocumentNode,
        *,
        root_value: Any = None,
        context_value: Any = None,
        caller: Caller | None = None,
        variable_values: dict[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> ExecutionResult:
        """Guarded ``graphql_sync``: resolvers must not be async."""
        prepared = self.prepare(source, context_value=context_value, caller=caller,
                                variable_values=variable_values, operation_name=operation_name)
        if isinstance(prepared, ExecutionResult):
            return prepared
        result = self._execute(prepared, root_value, context_value, variable_values,
                               operation_name)
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if close is not None:
                close()
            return prepared[0].finish(ExecutionResult(None, [_bad(
                "an async resolver ran under execute_sync; use execute()", "INTERNAL")]))
        return prepared[0].finish(result)

    async def execute(
        self,
        source: str | DocumentNode,
        *,
        root_value: Any = None,
        context_value: Any = None,
        caller: Caller | None = None,
        variable_values: dict[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> ExecutionResult:
        """Guarded ``graphql``: sync and async resolvers. The plan, the quota
        round trips and the audit write are awaited, not run on the loop."""
        prepared = await self.aprepare(source, context_value=context_value, caller=caller,
                                       variable_values=variable_values,
                                       operation_name=operation_name)
        if isinstance(prepared, ExecutionResult):
            return prepared
        result = self._execute(prepared, root_value, context_value, variable_values,
                               operation_name)
        if inspect.isawaitable(result):
            result = await result
        return await prepared[0].afinish(result)

    async def subscribe(
        self,
        source: str | DocumentNode,
        *,
        root_value: Any = None,
        context_value: Any = None,
        caller: Caller | None = None,
        variable_values: dict[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> AsyncIterator[ExecutionResult] | ExecutionResult:
        """Guarded ``subscribe``: one plan, every event guarded; the audit
        record is written when the stream ends."""
        prepared = await self.aprepare(source, context_value=context_value, caller=caller,
                                       variable_values=variable_values,
                                       operation_name=operation_name)
        if isinstance(prepared, ExecutionResult):
            return prepared
        run, document, _ = prepared
        stream = subscribe(
            self.schema, document, root_value=root_value, context_value=context_value,
            variable_values=variable_values, operation_name=operation_name,
            executor_class=guarded_executor_class(None), fieldguard=run.enforcer,
        )
        if inspect.isawaitable(stream):
            stream = await stream
        if isinstance(stream, ExecutionResult):
            return await run.afinish(stream)
        return _guarded_stream(run, stream)


async def _guarded_stream(run: OperationRun,
                          stream: AsyncIterator[ExecutionResult]) -> AsyncIterator[ExecutionResult]:
    last = ExecutionResult(None, None)
    enforcer = run.enforcer
    try:
        async for event in stream:
            if enforcer is not None:
                withheld = enforcer.take_errors()
                if withheld:
                    event.errors = [*(event.errors or []), *withheld]
            last = event
            yield event
    finally:
        await run.afinish(ExecutionResult(last.data, None))
