"""The resolvers fieldguard substitutes for one request's guarded fields.

Each factory returns a resolver specialised for one kind of work, so a field
pays only for what its effect needs. Fields the plan (or an object's
verdict) allows and that are not personal data are *not* substituted at all
(see ``executor.py``). The resolvers call the field's own resolver (or the
executor's default one) as ``resolve(root, info, **args)``, like
graphql-core does.

* :func:`denying` — never calls the resolver: null plus one aggregated
  ``FORBIDDEN`` error per (coordinate, reason), or an error raised at once on
  a non-null field so null propagates to the parent (spec);
* :func:`masking` — the resolver's value through the named masker;
* :func:`releasing` — personal data released as is, counted for the audit;
* :func:`checking` — the per-object decision made per value (only used when
  a value is resolved outside ``execute_fields``; objects normally get a
  table for their verdict instead);
* :func:`filtering` — a field returning guarded objects: batch-decided,
  invisible ones dropped;
* :func:`refusing` — raises the given error (no plan, failed decision).

Example:
    >>> from graphql import GraphQLError
    >>> resolve = refusing(GraphQLError("no plan"))
    >>> try:
    ...     resolve(None, None)
    ... except GraphQLError as exc:
    ...     print(exc.message)
    no plan
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, GraphQLField, GraphQLResolveInfo

from fieldguard.policies.contract import DENY_MISSING

if TYPE_CHECKING:
    from fieldguard.plugins.gql.enforcer import FieldEnforcer

Resolver = Callable[..., Any]
Info = GraphQLResolveInfo[Any]
#: values released as they are: no awaitable, no objects to decide
PLAIN = (str, int, float, bool, type(None))


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """What one request needs to know about one field of one object type.

    Attributes:
        parent: the object type's name.
        coord: ``Type.field``.
        definition: the schema's field definition.
        resolver: the field's own resolver, or the executor's default.
        named: the field's named (unwrapped) return type.
        non_null: the field is non-null (a denial raises, for null propagation).
        returns_guarded: its values are objects that get per-object decisions.
        personal: its values are personal data (counted in the audit).
        subject_type: the parent type when its objects name a data subject.
    """

    parent: str
    coord: str
    definition: GraphQLField
    resolver: Resolver
    named: Any
    non_null: bool
    returns_guarded: bool
    personal: bool
    subject_type: str | None


def substitute(definition: GraphQLField, resolve: Resolver) -> GraphQLField:
    """A copy of ``definition`` with ``resolve`` in its place (the schema's
    own definition is never changed: other requests share it)."""
    field = copy.copy(definition)
    field.resolve = resolve
    return field


def forbidden(coord: str, reason: str) -> GraphQLError:
    """The ``FORBIDDEN`` error of one withheld value."""
    return GraphQLError(
        f"Not allowed to read {coord}: {reason}" if reason else f"Not allowed to read {coord}",
        extensions={"code": "FORBIDDEN", "coordinate": coord,
                    **({"reason": reason} if reason else {})},
    )


def refusing(error: GraphQLError) -> Resolver:
    """A resolver that raises ``error`` (the resolver never runs)."""

    def refuse(root: Any, info: Info, **args: Any) -> Any:
        raise error

    return refuse


def denying(enforcer: FieldEnforcer, spec: FieldSpec, reason: str) -> Resolver:
    """Withhold every value of the field (the resolver never runs)."""
    coord = spec.coord
    if spec.non_null:
        def deny_non_null(root: Any, info: Info, **args: Any) -> Any:
            raise enforcer.refuse_non_null(coord, reason)

        return deny_non_null
    withhold = enforcer.withhold

    def deny(root: Any, info: Info, **args: Any) -> Any:
        return withhold(coord, reason, info.path)

    return deny


def masking(enforcer: FieldEnforcer, spec: FieldSpec, mask: str,
            per_object: bool = False) -> Resolver:
    """Release every value of the field through the masker ``mask``.

    ``per_object``: the data subject is noted once per object by the
    enforcer (verdict tables), not per value.
    """
    return _counted(enforcer, spec, "mask", mask, per_object)


def releasing(enforcer: FieldEnforcer, spec: FieldSpec) -> Resolver:
    """Release personal data as is, counting each value for the audit."""
    return _counted(enforcer, spec, "allow", None, False)


def _counted(enforcer: FieldEnforcer, spec: FieldSpec, kind: str, mask: str | None,
             per_object: bool) -> Resolver:
    own, key, counts = spec.resolver, (spec.coord, kind), enforcer.counts
    masker = enforcer.maskers.get(mask) if mask is not None else None
    subject_type = None if per_object else spec.subject_type

    def counted(root: Any, info: Info, **args: Any) -> Any:
        value = own(root, info, **args)
        if type(value) not in PLAIN:
            return enforcer.finish(spec, value, info, mask, root)
        if masker is not None and value is not None:
            value = masker(value)
        counts[key] = counts.get(key, 0) + 1
        if subject_type is not None:
            enforcer.note_subject(subject_type, root)
        return value

    return counted


def checking(enforcer: FieldEnforcer, spec: FieldSpec) -> Resolver:
    """Decide the value by its object's verdict, value by value."""
    coord, own = spec.coord, spec.resolver

    def check(root: Any, info: Info, **args: Any) -> Any:
        verdict = enforcer.verdict_for(spec.parent, root)
        effect = verdict.fields.get(coord, DENY_MISSING) if verdict.visible else None
        if effect is None or effect.effect == "deny":
            reason = effect.reason if effect is not None else "object not visible"
            if spec.non_null:
                raise enforcer.refuse_non_null(coord, reason)
            return enforcer.withhold(coord, reason, info.path)
        mask = effect.mask if effect.effect == "mask" else None
        return enforcer.finish(spec, own(root, info, **args), info, mask, root)

    return check


def filtering(enforcer: FieldEnforcer, spec: FieldSpec) -> Resolver:
    """Decide the objects the field returns in one batch; drop invisible ones."""
    own = spec.resolver

    def decide(root: Any, info: Info, **args: Any) -> Any:
        return enforcer.finish(spec, own(root, info, **args), info, None, root)

    return decide


def hiding(resolver: Resolver, hidden: frozenset[str]) -> Resolver:
    """``__Type.fields`` without the coordinates in ``hidden``."""

    def visible_fields(root: Any, info: Info, **args: Any) -> Any:
        fields = resolver(root, info, **args)
        if inspect.isawaitable(fields):
            return fields
        type_name = getattr(root, "name", "")
        return [item for item in fields if f"{type_name}.{item[0]}" not in hidden]

    return visible_fields
