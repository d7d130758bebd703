"""One request's enforcement: field tables built from the plan, object
verdicts, tallies and withheld values. A lookup, never an engine call per field.

A :class:`FieldEnforcer` is created per request around a
:class:`~fieldguard.guard.Session` whose plan is decided, and bound to the
request's guarded executor (``executor.py``). For each object type it builds
:class:`Table` s mapping field names to what the executor should run:

* allowed, not personal, returning no guarded object type → the schema's own
  field definition (no per-field work);
* denied → the resolver never runs; the value is null, and the response gets
  one ``FORBIDDEN`` error per (coordinate, reason) whose ``path`` is the first
  occurrence and ``extensions.paths``/``count`` list them all (a non-null
  field raises instead, so null propagates to its parent as the GraphQL
  spec's null propagation says);
* masked → the resolver's value goes through the named masker;
* check → decided by the object's verdict: objects of a guarded type get the
  table *of their verdict* (one per distinct verdict, built once), so allowed
  values cost nothing and personal ones are counted once per object;
* a field returning objects of a guarded type → the objects are decided in
  one batch per list; invisible ones are dropped (null where alone), and
  records beyond the plan's remaining record quota are withheld.

Example:
    See ``fieldguard.plugins.graphql_core.GraphQLGuard`` for the entry point.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    get_named_type,
    is_abstract_type,
    is_composite_type,
)

from fieldguard.errors import EngineError, FieldGuardError
from fieldguard.guard import FailMode, Session
from fieldguard.plugins.gql import fields as F
from fieldguard.plugins.gql.errors import to_graphql_error
from fieldguard.plugins.gql.executor import Fallback, SchemaView
from fieldguard.policies.contract import DENY_MISSING, ObjectVerdict

Info = F.Info


class Table:
    """Field definitions to execute for one object type, in one request,
    under one verdict (``None``: the type's base table)."""

    __slots__ = ("enforcer", "fields", "guarded", "masked", "personal", "tallies", "type",
                 "verdict", "verdicts")

    def __init__(self, enforcer: FieldEnforcer, type_: GraphQLObjectType,
                 verdict: ObjectVerdict | None, guarded: bool) -> None:
        self.enforcer = enforcer
        self.type = type_
        self.verdict = verdict
        self.guarded = guarded
        self.fields: dict[str, GraphQLField] = {}
        #: names of allowed personal fields, counted per object (verdict tables)
        self.personal: set[str] = set()
        #: names of masked fields (verdict tables: their subject is noted per object)
        self.masked: set[str] = set()
        #: per selection (grouped field set): its personal coordinates and
        #: how many objects executed it
        self.tallies: dict[int, _Tally] = {}
        #: base tables of guarded types: the verdict tables, by verdict identity
        self.verdicts: dict[int, Table] = {}

    def build(self, name: str) -> GraphQLField | None:
        """The definition to execute for field ``name`` (built once)."""
        field = self.enforcer.entry(self, name)
        if field is not None:
            self.fields[name] = field
        return field


class _Tally:
    __slots__ = ("coords", "objects", "releases", "selection")

    def __init__(self, selection: Any, coords: tuple[str, ...], releases: bool) -> None:
        self.selection = selection  # kept alive: its id is the tally's key
        self.coords = coords  # allowed personal coordinates, counted per object
        self.releases = releases  # personal data (allowed or masked) leaves
        self.objects = 0


class _Withheld:
    """Values of one coordinate withheld for one reason: one error for all."""

    __slots__ = ("count", "paths")

    def __init__(self) -> None:
        self.count = 0
        self.paths: list[Any] = []


class FieldEnforcer:
    """The enforcement state of one guarded operation.

    Args:
        session: the request's session, with its plan decided.
        schema: the schema being executed.
        hidden: coordinates to hide from introspection results.
    """

    #: paths listed in one aggregated FORBIDDEN error
    MAX_PATHS = 50

    def __init__(self, session: Session, schema: GraphQLSchema,
                 hidden: Iterable[str] = ()) -> None:
        self.session = session
        self.schema = schema
        self.hidden = frozenset(hidden)
        self.maskers = session.guard.maskers
        #: the session's verdict memo, by object identity (read per object)
        self.by_object = session.verdict_memo
        #: set when an objects decision failed under ``FailMode.REJECT``:
        #: the entry point then drops all data.
        self.rejected: EngineError | None = None
        #: True once an executor runs this operation (integrations check it)
        self.bound = False
        # Per-request tallies, folded into the session's Exposure once by
        # flush(): cheaper than a lock per value. A request's resolvers run on
        # one thread (sync execution, or one event loop).
        self.counts: dict[tuple[str, str], int] = {}
        self.subjects: set[str] = set()
        self._withheld: dict[tuple[str, str], _Withheld] = {}
        self._tables: dict[GraphQLObjectType, Table] = {}
        self._failed: dict[GraphQLObjectType, Table] = {}
        self._specs: dict[tuple[str, str], F.FieldSpec] = {}
        self._guards: dict[str, bool] = {}
        self._default_resolver: F.Resolver | None = None

    # -- binding to an executor --------------------------------------------------

    def bind(self, schema: GraphQLSchema, default_resolver: F.Resolver) -> SchemaView:
        """The schema view an executor of this operation runs against."""
        self.bound = True
        self._default_resolver = default_resolver
        return SchemaView.over(schema, self.field)

    def field(self, parent_type: Any, name: str) -> GraphQLField | None:
        """The definition of ``name`` from the base table of ``parent_type``
        (used when no object table is active)."""
        table = self._tables.get(parent_type) or self._base_table(parent_type)
        found = table.fields.get(name)
        return found if found is not None else table.build(name)

    def table_for(self, parent_type: GraphQLObjectType, source: Any, selection: Any) -> Table:
        """The table to execute ``selection`` on ``source`` with."""
        base = self._tables.get(parent_type) or self._base_table(parent_type)
        if not base.guarded:
            return base
        hit = self.by_object.get(id(source))
        if hit is not None and hit[0] is source:
            verdict, subject = hit[1], hit[2]
        else:
            try:
                verdict, subject = self.session.verdict_of(parent_type.name, source)
            except FieldGuardError as exc:
                return self._failed_table(parent_type, exc)
        table = base.verdicts.get(id(verdict))
        if table is None:
            table = base.verdicts[id(verdict)] = Table(self, parent_type, verdict, True)
        tally = table.tallies.get(id(selection))
        if tally is None:
            tally = table.tallies[id(selection)] = self._tally(table, selection)
        tally.objects += 1
        if subject is not None and tally.releases:
            self.subjects.add(subject)
        return table

    # -- building tables -----------------------------------------------------

    def _base_table(self, parent_type: Any) -> Table:
        guarded = isinstance(parent_type, GraphQLObjectType) and \
            self.session.is_guarded_type(parent_type.name)
        table = self._tables[parent_type] = Table(self, parent_type, None, guarded)
        return table

    def _failed_table(self, parent_type: GraphQLObjectType, exc: FieldGuardError) -> Table:
        """Every field of an object whose decision failed raises that failure
        (one table per type and request: a failing engine fails many objects)."""
        error = self.fail(exc)
        table = self._failed.get(parent_type)
        if table is None:
            table = self._failed[parent_type] = Table(self, parent_type, None, True)
            for name, definition in parent_type.fields.items():
                table.fields[name] = F.substitute(definition, F.refusing(error))
        return table

    def _tally(self, table: Table, selection: Any) -> _Tally:
        coords, releases = [], False
        for details in selection.values():
            name = details[0].node.name.value
            if name not in table.fields:
                table.build(name)
            if name in table.personal:
                coords.append(f"{table.type.name}.{name}")
            releases = releases or name in table.masked
        return _Tally(selection, tuple(coords), releases or bool(coords))

    def spec(self, parent_type: GraphQLObjectType, name: str,
             definition: GraphQLField) -> F.FieldSpec:
        """What this request needs to know about one field (built once)."""
        key = (parent_type.name, name)
        spec = self._specs.get(key)
        if spec is not None:
            return spec
        session = self.session
        coord = f"{parent_type.name}.{name}"
        named = get_named_type(definition.type)
        op = session.operation
        code_tags = op.code_tags.get(coord, ()) if op else ()
        type_spec = session.classification.types.get(parent_type.name)
        spec = self._specs[key] = F.FieldSpec(
            parent=parent_type.name, coord=coord, definition=definition,
            resolver=definition.resolve or self._default_resolver or _missing_resolver,
            named=named, non_null=isinstance(definition.type, GraphQLNonNull),
            returns_guarded=self.guards_type(named),
            personal=session.classification.is_personal(coord, code_tags),
            subject_type=parent_type.name if type_spec and type_spec.subject else None,
        )
        return spec

    def entry(self, table: Table, name: str) -> GraphQLField | None:
        """What to execute for field ``name`` under ``table``."""
        parent = table.type
        definition = parent.fields.get(name) if hasattr(parent, "fields") else None
        if definition is None:  # __typename, __schema, __type, or unknown
            return GraphQLSchema.get_field(self.schema, parent, name)
        if parent.name.startswith("__") or name.startswith("__"):  # introspection types
            if self.hidden and parent.name == "__Type" and name == "fields":
                spec = self.spec(parent, name, definition)
                return F.substitute(definition, F.hiding(spec.resolver, self.hidden))
            return definition  # type: ignore[no-any-return]
        spec = self.spec(parent, name, definition)
        effect = self.session.effect(spec.coord)
        kind, reason, mask = effect.effect, effect.reason, effect.mask
        verdict = table.verdict
        if kind == "check":
            if verdict is not None:  # decided for this object
                if not verdict.visible:
                    kind, reason = "deny", "object not visible"
                else:
                    per_object = verdict.fields.get(spec.coord, DENY_MISSING)
                    kind, reason, mask = per_object.effect, per_object.reason, per_object.mask
            elif table.guarded:  # outside execute_fields: decide per value
                return F.substitute(spec.definition, F.checking(self, spec))
            else:
                kind, reason = "deny", f"no object rules for type {spec.parent}"
        elif verdict is not None and not verdict.visible:
            kind, reason = "deny", "object not visible"
        if kind == "mask" and is_composite_type(spec.named):  # an object cannot be masked
            kind, reason = "deny", "an object cannot be masked; withheld"
        if kind == "deny":
            return F.substitute(spec.definition, F.denying(self, spec, reason))
        if kind == "mask":
            mask = mask or "redact"
            if mask not in self.maskers:  # fail closed on a masker nobody registered
                return F.substitute(spec.definition,
                                    F.denying(self, spec, f"unknown masker {mask!r}"))
            if verdict is not None:
                table.masked.add(name)
            return F.substitute(spec.definition,
                                F.masking(self, spec, mask, per_object=verdict is not None))
        if kind != "allow":
            return F.substitute(spec.definition, F.denying(self, spec, f"unknown effect {kind!r}"))
        if spec.returns_guarded:
            return F.substitute(spec.definition, F.filtering(self, spec))
        if spec.personal:
            if verdict is not None:  # counted once per object by table_for
                table.personal.add(name)
                return definition  # type: ignore[no-any-return]
            return F.substitute(spec.definition, F.releasing(self, spec))
        return definition  # type: ignore[no-any-return]

    def guards_type(self, named: Any) -> bool:
        """True when values of ``named`` need per-object decisions."""
        cached = self._guards.get(named.name)
        if cached is not None:
            return cached
        session = self.session
        if is_abstract_type(named):
            possible = self.schema.get_possible_types(named)
            result = any(session.is_guarded_type(t.name) for t in possible)
        else:
            result = session.is_guarded_type(named.name)
        self._guards[named.name] = result
        return result

    # -- values ----------------------------------------------------------------

    def fail(self, exc: FieldGuardError) -> GraphQLError:
        """The GraphQL error for a failed decision; under ``FailMode.REJECT``
        an engine failure also fails the whole request."""
        if isinstance(exc, EngineError) and \
                self.session.guard.object_fail_mode is FailMode.REJECT:
            self.rejected = exc
        return to_graphql_error(exc)

    def verdict_for(self, type_name: str, obj: Any) -> ObjectVerdict:
        """``obj``'s verdict (memoised; decided now if it is new).

        Raises:
            GraphQLError: the decision failed.
        """
        hit = self.by_object.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        try:
            return self.session.verdict_of(type_name, obj)[0]
        except FieldGuardError as exc:
            raise self.fail(exc) from exc

    def note_subject(self, type_name: str, obj: Any) -> None:
        """Record ``obj``'s data subject as released to."""
        subject = self.session.subject_of(type_name, obj)
        if subject is not None:
            self.subjects.add(subject)

    def finish(self, spec: F.FieldSpec, value: Any, info: Info, mask: str | None,
               root: Any) -> Any:
        """Finish a resolved value: await it, decide the objects in it, mask
        it, and count it."""
        if inspect.isawaitable(value):
            return self._finish_async(spec, value, info, mask, root)
        try:
            if spec.returns_guarded and value is not None:
                value = self.filter_objects(value, info, spec.named)
                if value is None and spec.non_null:
                    raise F.forbidden(spec.coord, "object not visible")
        except FieldGuardError as exc:
            raise self.fail(exc) from exc
        if mask is not None:
            if value is not None:
                value = self.maskers.apply(mask, value)
            self.count(spec.coord, "mask", None)
        elif spec.personal:
            self.count(spec.coord, "allow", None)
        else:
            return value
        if spec.subject_type is not None:
            self.note_subject(spec.subject_type, root)
        return value

    async def _finish_async(self, spec: F.FieldSpec, value: Any, info: Info,
                            mask: str | None, root: Any) -> Any:
        return self.finish(spec, await value, info, mask, root)

    # -- tallies and withheld values -------------------------------------------

    def count(self, coord: str, kind: str, subject: str | None) -> None:
        """Count one released (``allow``), masked or denied value of ``coord``."""
        key = (coord, kind)
        self.counts[key] = self.counts.get(key, 0) + 1
        if subject is not None:
            self.subjects.add(subject)

    def withhold(self, coord: str, reason: str, path: Any) -> None:
        """Withhold one value of a nullable field: null, and one error per
        (coordinate, reason) for all of them.

        Raising a GraphQL error per value costs an exception, a located copy
        and a log record each; a thousand denied emails made the guard 8x
        slower than the API. Nullable fields therefore return null here and
        :meth:`take_errors` reports them together, with their paths.
        """
        entry = self._withheld.get((coord, reason))
        if entry is None:
            entry = self._withheld[(coord, reason)] = _Withheld()
        entry.count += 1
        if len(entry.paths) < self.MAX_PATHS:
            entry.paths.append(path)

    def refuse_non_null(self, coord: str, reason: str) -> GraphQLError:
        """The error to raise for a withheld value of a non-null field, so
        null propagates to its parent (GraphQL spec); counted as withheld."""
        self.count(coord, "deny", None)
        return F.forbidden(coord, reason)

    def flush(self) -> None:
        """Fold the released/masked tallies into the session's exposure."""
        counts = self.counts
        for base in self._tables.values():
            for table in base.verdicts.values():
                for tally in table.tallies.values():
                    for coord in tally.coords:
                        key = (coord, "allow")
                        counts[key] = counts.get(key, 0) + tally.objects
                    tally.objects = 0
        exposure = self.session.exposure
        for (coord, kind), n in counts.items():
            exposure.note(coord, kind, count=n)
        exposure.subjects.update(self.subjects)
        self.counts.clear()
        self.subjects = set()

    def take_errors(self) -> list[GraphQLError]:
        """The errors for values withheld since the last call, one FORBIDDEN
        error per (coordinate, reason): ``path`` is the first occurrence,
        ``extensions.paths`` lists up to 50 and ``count`` gives them all."""
        out = []
        for (coord, reason), entry in self._withheld.items():
            self.session.exposure.note(coord, "deny", count=entry.count)
            paths = [p.as_list() for p in entry.paths]
            err = F.forbidden(coord, reason)
            out.append(GraphQLError(err.message, path=paths[0] if paths else None,
                                    extensions={**(err.extensions or {}),
                                                "count": entry.count, "paths": paths}))
        self._withheld = {}
        return out

    # -- objects -------------------------------------------------------------

    def _type_name(self, obj: Any, info: Info, named: Any) -> str | None:
        if isinstance(named, GraphQLObjectType):
            return named.name
        resolver = getattr(named, "resolve_type", None)
        if resolver is not None:
            found = resolver(obj, info, named)
            if isinstance(found, str):
                return found
            return getattr(found, "name", None)
        for candidate in info.schema.get_possible_types(named):
            is_type_of = candidate.is_type_of
            if is_type_of is not None and is_type_of(obj, info) is True:
                return candidate.name
        typename = obj.get("__typename") if isinstance(obj, dict) else None
        return typename if isinstance(typename, str) else None

    def filter_objects(self, value: Any, info: Info, named: Any) -> Any:
        """Decide the objects a field returns; drop the invisible ones."""
        if isinstance(value, str | bytes | dict) or not isinstance(value, Iterable):
            return self._filter_one(value, info, named)
        return self._filter_list(list(value), info, named)

    def _filter_one(self, obj: Any, info: Info, named: Any) -> Any:
        type_name = self._type_name(obj, info, named)
        if type_name is None or not self.session.is_guarded_type(type_name):
            return obj if type_name is not None or not self.guards_type(named) else None
        verdict, _ = self.session.verdict_of(type_name, obj)
        if verdict.visible and self.session.take_records(1) == 1:
            self.session.exposure.add_records(1)
            return obj
        self.session.exposure.add_records(0, 0 if verdict.visible else 1)
        return None

    def _filter_list(self, items: list[Any], info: Info, named: Any) -> list[Any]:
        session = self.session
        if items and isinstance(items[0], list):
            return [self._filter_list(list(sub), info, named) for sub in items]
        by_type: dict[str, list[int]] = {}
        keep = [True] * len(items)
        for i, obj in enumerate(items):
            if obj is None:
                continue
            type_name = self._type_name(obj, info, named)
            if type_name is None:
                keep[i] = False  # cannot tell the type: fail closed
            elif session.is_guarded_type(type_name):
                by_type.setdefault(type_name, []).append(i)
        for type_name, idx in by_type.items():
            verdicts = session.verdicts(type_name, [items[i] for i in idx])
            for i, verdict in zip(idx, verdicts, strict=True):
                keep[i] = verdict.visible
        guarded = {i for idx in by_type.values() for i in idx}
        visible = [i for i in guarded if keep[i]]
        granted = session.take_records(len(visible))
        for i in sorted(visible)[granted:]:
            keep[i] = False  # beyond the record quota: withheld
        session.exposure.add_records(granted, len(guarded) - len(visible))
        return [obj for obj, k in zip(items, keep, strict=True) if k]


def _missing_resolver(root: Any, info: Info, **args: Any) -> Any:
    raise GraphQLError("fieldguard: no resolver bound for this field",
                       extensions={"code": "INTERNAL"})


class _NoPlan(FieldGuardError):
    code = "POLICY_UNDEFINED"
    http_status = 503


def refusing_fallback(schema: GraphQLSchema) -> Fallback:
    """``get_field`` for an executor that has no plan: every field refuses
    (``POLICY_UNDEFINED``), so nothing is released."""
    error = to_graphql_error(_NoPlan("no policy plan for this request"))
    made: dict[tuple[Any, str], GraphQLField | None] = {}

    def field(parent_type: Any, name: str) -> GraphQLField | None:
        key = (parent_type, name)
        if key not in made:
            definition = GraphQLSchema.get_field(schema, parent_type, name)
            if definition is not None:
                definition = F.substitute(definition, F.refusing(error))
            made[key] = definition
        return made[key]

    return field

