"""The guarded graphql-core executor: the operation rewritten before it runs.

Like Apollo Router, fieldguard rewrites what executes rather than wrapping
every field in a hook. graphql-core's ``Executor.execute_field`` asks
``self.schema.get_field(parent_type, name)`` for each field it runs; the
guarded executor puts a per-request :class:`SchemaView` there, whose
``get_field`` answers from the request's :class:`~fieldguard.plugins.gql.
enforcer.FieldEnforcer` tables:

* a field the plan allows, that is not personal data and returns no guarded
  object, gets its *own* definition back: no per-field work at all;
* a field that needs work (deny, mask, a per-object check, a guarded list)
  gets a per-request copy of its definition whose ``resolve`` is a small
  resolver specialised for that work (``fields.py``).

``execute_fields`` (one call per object) selects the table for the object
being executed: for objects of a guarded type that is the table of the
object's *verdict* (decided in a batch when the list holding it resolved),
so a value the verdict allows costs nothing either.

The view falls back to the per-type table when no object table is active, so
a code path of graphql-core that bypasses ``execute_fields`` is still guarded
field by field; only ``get_field`` is load-bearing, which is why the project
pins graphql-core to 3.3.x and tests every path to a denied field.

Example:
    >>> from graphql import build_schema
    >>> schema = build_schema("type Query { a: String }")
    >>> view = SchemaView.over(schema, lambda parent, name: None)
    >>> isinstance(view, type(schema)), view.query_type is schema.query_type
    (True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from graphql import GraphQLField, GraphQLObjectType, GraphQLSchema
from graphql.execution.executor import Executor
from graphql.execution.executor_throwing_on_incremental import ExecutorThrowingOnIncremental

if TYPE_CHECKING:
    from fieldguard.plugins.gql.enforcer import FieldEnforcer, Table

#: The enforcer of the operation about to execute, for integrations that
#: cannot pass it to the executor (strawberry builds the executor itself).
ACTIVE: ContextVar[FieldEnforcer | None] = ContextVar("fieldguard_enforcer", default=None)

Fallback = Callable[[GraphQLObjectType, str], "GraphQLField | None"]


class SchemaView(GraphQLSchema):
    """One request's view of a schema: the same types, and ``get_field``
    answering from the request's tables.

    Built without running ``GraphQLSchema.__init__``: it shares the real
    schema's attributes (types, directives, validation state), so anything
    that reads the schema from the executor or from ``info.schema`` sees the
    real schema's contents.
    """

    _fg_current: Table | None
    _fg_fallback: Fallback

    @classmethod
    def over(cls, schema: GraphQLSchema, fallback: Fallback) -> SchemaView:
        """A view of ``schema``; ``fallback(parent_type, name)`` answers
        when no table of ``parent_type`` is active."""
        view = cls.__new__(cls)
        view.__dict__.update(schema.__dict__)
        view._fg_current = None
        view._fg_fallback = fallback
        return view

    def get_field(self, parent_type: Any, field_name: str) -> GraphQLField | None:
        table = self._fg_current
        if table is not None and table.type is parent_type:
            found = table.fields.get(field_name)
            if found is not None:
                return found
            return table.build(field_name)
        return self._fg_fallback(parent_type, field_name)


class GuardedExecutor(Executor):  # type: ignore[type-arg]
    """Executor running one guarded operation (graphql-core integration).

    The enforcer comes as the ``fieldguard`` keyword (``execute(...,
    executor_class=GuardedExecutor, fieldguard=enforcer)``) or from
    :data:`ACTIVE`. Without one, every field is refused: an executor that
    lost its plan releases nothing.

    Only ``execute_fields`` activates a table. Mutation root fields run
    through ``execute_fields_serially``, one by one and possibly across
    awaits, so they use the per-type fallback table, which is just as strict.
    """

    fieldguard: FieldEnforcer | None

    def __init__(self, *args: Any, fieldguard: FieldEnforcer | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        enforcer = fieldguard if fieldguard is not None else ACTIVE.get()
        self.fieldguard = enforcer
        if enforcer is None:
            from fieldguard.plugins.gql.enforcer import refusing_fallback

            self.schema = SchemaView.over(self.schema, refusing_fallback(self.schema))
        else:
            self.schema = enforcer.bind(self.schema, self.field_resolver)

    def execute_fields(self, parent_type: GraphQLObjectType, source_value: Any, path: Any,
                       grouped_field_set: Any, position_context: Any) -> Any:
        enforcer = self.fieldguard
        if enforcer is None:
            return super().execute_fields(parent_type, source_value, path,
                                          grouped_field_set, position_context)
        view: Any = self.schema
        saved = view._fg_current
        view._fg_current = enforcer.table_for(parent_type, source_value, grouped_field_set)
        try:
            return super().execute_fields(parent_type, source_value, path,
                                          grouped_field_set, position_context)
        finally:
            view._fg_current = saved


_GUARDED: dict[type[Any], type[Any]] = {}


def guarded_executor_class(base: type[Any] | None) -> type[Any]:
    """``base`` (an Executor subclass) with fieldguard's enforcement mixed in;
    created once per base class. ``None`` means graphql-core's default for
    ``execute`` (it refuses ``@defer``/``@stream``).

    Example:
        >>> cls = guarded_executor_class(None)
        >>> issubclass(cls, GuardedExecutor), guarded_executor_class(None) is cls
        (True, True)
    """
    base = base or ExecutorThrowingOnIncremental
    if issubclass(base, GuardedExecutor):
        return base
    made = _GUARDED.get(base)
    if made is None:
        made = type(f"Guarded{base.__name__}", (GuardedExecutor, base), {
            "__doc__": f"{base.__name__} with fieldguard enforcement (see GuardedExecutor).",
            "__module__": __name__,
        })
        _GUARDED[base] = made
    return made
