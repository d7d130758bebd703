"""Per-field enforcement during execution: a lookup, not an engine call.

A :class:`FieldEnforcer` is created per request around a
:class:`~fieldguard.guard.Session` whose plan is decided. It works as
graphql-core middleware (``resolve(next_, root, info, **args)``) and behind
the strawberry extension. For each ``(parent type, field)`` it builds an
action once per request from the plan:

* allowed, public, returning no guarded object type → the resolver is called
  directly (one dict lookup of overhead);
* denied → the resolver never runs; the value is null, and the response gets
  one ``FORBIDDEN`` error per (coordinate, reason) whose ``path`` is the first
  occurrence and ``extensions.paths``/``count`` list them all (a non-null
  field raises instead, so null propagates to its parent as the GraphQL
  spec's null propagation says);
* masked → the resolver's value goes through the named masker;
* check → the value's fate comes from the batched objects decision for the
  parent object (decided when the list holding it was resolved);
* a field returning objects of a guarded type → the objects are decided in
  one batch per list; invisible ones are dropped (null where alone), and
  records beyond the plan's remaining record quota are withheld.

Example:
    See ``fieldguard.plugins.graphql_core.GraphQLGuard`` for the entry point.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    get_named_type,
    is_abstract_type,
    is_composite_type,
)

from fieldguard.errors import EngineError, FieldGuardError
from fieldguard.guard import FailMode, Session
from fieldguard.plugins.gql.errors import to_graphql_error
from fieldguard.policies.contract import DENY_MISSING, FieldEffect

Resolver = Callable[..., Any]
Info = GraphQLResolveInfo[Any]
_PLAIN = (str, int, float, bool, type(None))
PASS = None  # sentinel action: call the resolver untouched
_UNKNOWN: Any = object()  # no action built yet for this field


def _forbidden(coord: str, reason: str) -> GraphQLError:
    return GraphQLError(
        f"Not allowed to read {coord}: {reason}" if reason else f"Not allowed to read {coord}",
        extensions={"code": "FORBIDDEN", "coordinate": coord,
                    **({"reason": reason} if reason else {})},
    )


class _Action:
    """What to do for one (parent type, field) in this request."""

    __slots__ = ("allow_key", "check", "coord", "denied", "enforcer", "guarded", "mask",
                 "mask_key", "non_null", "parent", "personal", "reason")

    def __init__(self, enforcer: FieldEnforcer, info: Info) -> None:
        session = enforcer.session
        self.enforcer = enforcer
        self.parent = info.parent_type.name
        self.coord = f"{self.parent}.{info.field_name}"
        self.allow_key = (self.coord, "allow")
        self.mask_key = (self.coord, "mask")
        field_def = info.parent_type.fields[info.field_name]
        named = get_named_type(field_def.type)
        effect = session.effect(self.coord)
        self.reason = effect.reason
        self.denied = effect.effect == "deny"
        self.check = effect.effect == "check"
        self.mask = effect.mask if effect.effect == "mask" else None
        if self.mask and is_composite_type(named):  # an object cannot be masked
            self.denied, self.mask = True, None
            self.reason = "an object cannot be masked; withheld"
        self.non_null = isinstance(field_def.type, GraphQLNonNull)
        self.guarded = enforcer.guards_type(named)
        op = session.operation
        code_tags = op.code_tags.get(self.coord, ()) if op else ()
        self.personal = session.classification.is_personal(self.coord, code_tags)

    @property
    def passes(self) -> bool:
        """Nothing to do: call the resolver untouched."""
        return not (self.denied or self.check or self.mask or self.guarded or self.personal)

    def run(self, next_: Resolver, root: Any, info: Info, args: Any) -> Any:
        enforcer = self.enforcer
        if self.denied:
            return enforcer.withhold(self, info, self.reason)
        mask = self.mask
        subject = None
        if self.check:
            # Fast path: the parent came in a batch-decided list, so its verdict
            # is memoised by identity; otherwise decide it now.
            hit = enforcer.by_object.get(id(root))
            if hit is not None and hit[0] is root and hit[1].visible:
                effect = hit[1].fields.get(self.coord, DENY_MISSING)
                subject = hit[2]
            else:
                effect, subject = enforcer.object_effect(self.parent, self.coord, root)
            if effect.effect == "deny":
                return enforcer.withhold(self, info, effect.reason)
            if effect.effect == "mask":
                mask = effect.mask
        elif self.personal:
            subject = enforcer.session.subject_of(self.parent, root)
        value = next_(root, info, **args)
        if type(value) in _PLAIN and not self.guarded:
            # Plain leaf value: no awaitable, no objects to filter. The tally
            # is inlined: this line runs for every personal value released.
            if mask is not None:
                if value is not None:
                    value = enforcer.maskers.apply(mask, value)
                key = self.mask_key
            elif self.personal:
                key = self.allow_key
            else:
                return value
            counts = enforcer.counts
            counts[key] = counts.get(key, 0) + 1
            if subject is not None:
                enforcer.subjects.add(subject)
            return value
        if inspect.isawaitable(value):
            return self._finish_async(value, info, mask, subject)
        return self._finish(value, info, mask, subject)

    async def _finish_async(self, value: Any, info: Info, mask: str | None,
                            subject: str | None) -> Any:
        return self._finish(await value, info, mask, subject)

    def _finish(self, value: Any, info: Info, mask: str | None,
                subject: str | None) -> Any:
        enforcer = self.enforcer
        if self.guarded and value is not None:
            value = enforcer.filter_objects(value, info)
            if value is None and self.non_null:
                raise _forbidden(self.coord, "object not visible")
        if mask is not None:
            if value is not None:
                value = enforcer.session.guard.maskers.apply(mask, value)
            enforcer.count(self.coord, "mask", subject)
        elif self.personal:
            enforcer.count(self.coord, "allow", subject)
        return value


class _Withheld:
    """Values of one coordinate withheld for one reason: one error for all."""

    __slots__ = ("count", "paths")

    def __init__(self) -> None:
        self.count = 0
        self.paths: list[Any] = []


class FieldEnforcer:
    """graphql-core middleware enforcing one request's plan.

    Args:
        session: the request's session, with its plan decided.
        schema: the schema being executed.
        hidden: coordinates to hide from introspection results.
    """

    def __init__(self, session: Session, schema: GraphQLSchema,
                 hidden: Iterable[str] = ()) -> None:
        self.session = session
        self.schema = schema
        self.hidden = frozenset(hidden)
        self.maskers = session.guard.maskers
        #: the session's verdict memo, by object identity (read on the hot path)
        self.by_object = session.verdict_memo
        #: set when an objects decision failed under ``FailMode.REJECT``:
        #: the entry point then drops all data.
        self.rejected: EngineError | None = None
        # Per-request tallies, folded into the session's Exposure once by
        # flush(): cheaper than a lock per value. A request's resolvers run on
        # one thread (sync execution, or one event loop).
        self.counts: dict[tuple[str, str], int] = {}
        self.subjects: set[str] = set()
        self._withheld: dict[tuple[str, str], _Withheld] = {}
        self._actions: dict[str, dict[str, _Action | None]] = {}
        self._guards: dict[str, bool] = {}

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

    def _action(self, info: Info) -> _Action | None:
        parent = info.parent_type.name
        if parent.startswith("__") or info.field_name.startswith("__"):
            action: _Action | None = None
        else:
            action = _Action(self, info)
            if action.passes:
                action = PASS
        self._actions.setdefault(parent, {})[info.field_name] = action
        return action

    def resolve(self, next_: Resolver, root: Any, info: Info, **args: Any) -> Any:
        """The middleware hook graphql-core calls for every field."""
        by_field = self._actions.get(info.parent_type.name)
        action = by_field.get(info.field_name, _UNKNOWN) if by_field is not None else _UNKNOWN
        if action is _UNKNOWN:
            action = self._action(info)
        if action is PASS:
            if self.hidden and info.field_name == "fields" and info.parent_type.name == "__Type":
                return self._hide_fields(next_(root, info, **args), root)
            return next_(root, info, **args)
        try:
            return action.run(next_, root, info, args)
        except FieldGuardError as exc:
            if isinstance(exc, EngineError) and self.session.guard.object_fail_mode is \
                    FailMode.REJECT:
                self.rejected = exc
            raise to_graphql_error(exc) from exc

    # -- tallies and withheld values -------------------------------------------

    MAX_PATHS = 50

    def count(self, coord: str, kind: str, subject: str | None) -> None:
        """Count one released (``allow``) or masked value of ``coord``."""
        key = (coord, kind)
        self.counts[key] = self.counts.get(key, 0) + 1
        if subject is not None:
            self.subjects.add(subject)

    def withhold(self, action: _Action, info: Info, reason: str) -> None:
        """Withhold one value: null, and one error per (coordinate, reason).

        Raising a GraphQL error per value costs an exception, a located copy
        and a log record each; a thousand denied emails made the guard 8x
        slower than the API. Nullable fields therefore return null here and
        :meth:`errors` reports them together, with their paths. A non-null
        field must raise so that null propagates to its parent (spec).
        """
        if action.non_null:
            key = (action.coord, "deny")
            self.counts[key] = self.counts.get(key, 0) + 1
            raise _forbidden(action.coord, reason)
        entry = self._withheld.get((action.coord, reason))
        if entry is None:
            entry = self._withheld[(action.coord, reason)] = _Withheld()
        entry.count += 1
        if len(entry.paths) < self.MAX_PATHS:
            entry.paths.append(info.path)
        return None

    def flush(self) -> None:
        """Fold the released/masked tallies into the session's exposure."""
        exposure = self.session.exposure
        for (coord, kind), n in self.counts.items():
            exposure.note(coord, kind, count=n)
        exposure.subjects.update(self.subjects)
        self.counts, self.subjects = {}, set()

    def take_errors(self) -> list[GraphQLError]:
        """The errors for values withheld since the last call, one FORBIDDEN
        error per (coordinate, reason): ``path`` is the first occurrence,
        ``extensions.paths`` lists up to 50 and ``count`` gives them all."""
        out = []
        for (coord, reason), entry in self._withheld.items():
            self.session.exposure.note(coord, "deny", count=entry.count)
            paths = [p.as_list() for p in entry.paths]
            err = _forbidden(coord, reason)
            out.append(GraphQLError(err.message, path=paths[0] if paths else None,
                                    extensions={**(err.extensions or {}),
                                                "count": entry.count, "paths": paths}))
        self._withheld = {}
        return out

    # -- objects -------------------------------------------------------------

    def object_effect(self, parent: str, coord: str, root: Any) -> tuple[Any, str | None]:
        """The per-object effect of ``coord`` on ``root``, and its data subject."""
        session = self.session
        if not session.is_guarded_type(parent):
            return FieldEffect("deny", reason=f"no object rules for type {parent}"), None
        verdict, subject = session.verdict_of(parent, root)
        if not verdict.visible:
            return FieldEffect("deny", reason="object not visible"), subject
        return verdict.effect(coord), subject

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

    def filter_objects(self, value: Any, info: Info) -> Any:
        """Decide the objects a field returns; drop the invisible ones."""
        field_def = info.parent_type.fields[info.field_name]
        named = get_named_type(field_def.type)
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

    # -- introspection -------------------------------------------------------

    def _hide_fields(self, fields: Any, root: Any) -> Any:
        if inspect.isawaitable(fields):
            return fields
        type_name = getattr(root, "name", "")
        return [item for item in fields if f"{type_name}.{item[0]}" not in self.hidden]
