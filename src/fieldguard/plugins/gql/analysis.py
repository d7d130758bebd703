"""Static analysis of a GraphQL operation, before anything executes.

One walk over the validated document gives the plan everything it decides on:
each schema coordinate the operation can reach (a field on an interface or a
union reaches every possible concrete type), how often, and the operation's
complexity: depth, aliases and fields *after* fragment expansion, the largest
page-size argument and a static cost in the style of the IBM GraphQL cost
spec (``@cost(weight)``, ``@listSize(assumedSize, slicingArguments)``).

Fragments are summarised once each and reused, so a "fragment bomb" whose
expansion is exponential is analysed in time linear in the document while its
counts still reflect the full expansion (which is what the policy caps).
``@include``/``@skip`` are honoured with the request's variables.

Example:
    >>> from graphql import build_schema, parse
    >>> schema = build_schema('''
    ...   type Query { users(first: Int): [User!]! }
    ...   type User { name: String, email: String }
    ... ''')
    >>> doc = parse('{ a: users(first: 5) { name } b: users { ...F } } '
    ...             'fragment F on User { email }')
    >>> op = analyze(schema, doc, None, {})
    >>> dict(op.fields), op.complexity["aliases"], op.complexity["max_list"]
    ({'Query.users': 2, 'User.name': 1, 'User.email': 1}, 2, 5)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLIncludeDirective,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    is_composite_type,
    is_object_type,
)
from graphql.execution.values import get_argument_values, get_directive_values
from graphql.type.definition import GraphQLField
from graphql.utilities import value_from_ast_untyped

from fieldguard.errors import BadRequest
from fieldguard.guard import Operation

CLASSIFY_DIRECTIVE = "classify"
METADATA_KEY = "fieldguard"
STRAWBERRY_BACKREF = "strawberry-definition"


@dataclass(frozen=True)
class AnalysisConfig:
    """Knobs of the analysis.

    Attributes:
        slicing_arguments: page-size arguments when a field declares none.
        default_list_size: assumed size of a list with no slicing argument.
        hard_depth: nesting beyond this is refused before the policy is asked
            (it protects the analysis itself; the policy's ``max_depth`` is lower).
        id_arguments: arguments whose values feed the enumeration signal.
        max_probed_ids: at most this many ids are reported per operation.
    """

    slicing_arguments: tuple[str, ...] = ("first", "last", "limit")
    default_list_size: int = 10
    hard_depth: int = 64
    id_arguments: tuple[str, ...] = ("id",)
    max_probed_ids: int = 100


@dataclass(frozen=True)
class FieldAnnotation:
    """What code says about one field: classification tags and cost."""

    tags: tuple[str, ...] = ()
    weight: int | None = None
    assumed_size: int | None = None
    slicing_arguments: tuple[str, ...] | None = None


def _directive_args(node: Any, name: str) -> dict[str, Any] | None:
    for directive in getattr(node, "directives", None) or ():
        if directive.name.value == name:
            return {a.name.value: value_from_ast_untyped(a.value) for a in directive.arguments}
    return None


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def annotation_of(gfield: GraphQLField) -> FieldAnnotation:
    """Read tags and cost from SDL directives or strawberry field metadata.

    SDL: ``@classify(tags: ["pii"])``, ``@cost(weight: "5")`` (the IBM spec
    spells weight as a string; integers work too),
    ``@listSize(assumedSize: 50, slicingArguments: ["first"])``.
    Strawberry: ``strawberry.field(metadata={"fieldguard": {"tags": ["pii"],
    "cost": 5, "assumed_size": 50, "slicing_arguments": ["first"]}})``.
    """
    meta: Mapping[str, Any] = {}
    definition = (gfield.extensions or {}).get(STRAWBERRY_BACKREF)
    if definition is not None:
        raw = (getattr(definition, "metadata", None) or {}).get(METADATA_KEY) or {}
        meta = raw if isinstance(raw, Mapping) else {}
    classify = _directive_args(gfield.ast_node, CLASSIFY_DIRECTIVE) or {}
    cost = _directive_args(gfield.ast_node, "cost") or {}
    size = _directive_args(gfield.ast_node, "listSize") or {}
    tags = tuple(meta.get("tags") or classify.get("tags") or ())
    slicing = meta.get("slicing_arguments") or size.get("slicingArguments")
    return FieldAnnotation(
        tags=tuple(str(t) for t in tags),
        weight=_int_or_none(meta.get("cost", cost.get("weight"))),
        assumed_size=_int_or_none(meta.get("assumed_size", size.get("assumedSize"))),
        slicing_arguments=tuple(slicing) if slicing else None,
    )


class Annotations:
    """Annotations of every field of a schema, read once per schema.

    Example:
        >>> from graphql import build_schema
        >>> s = build_schema('directive @classify(tags: [String!]!) on FIELD_DEFINITION '
        ...                  'type Query { me: String @classify(tags: ["pii"]) }')
        >>> Annotations(s).tags["Query.me"]
        ('pii',)
    """

    def __init__(self, schema: GraphQLSchema) -> None:
        self.by_field: dict[tuple[str, str], FieldAnnotation] = {}
        self.tags: dict[str, tuple[str, ...]] = {}
        self.coordinates: list[str] = []
        for type_ in schema.type_map.values():
            fields = getattr(type_, "fields", None)
            if type_.name.startswith("__") or not isinstance(fields, Mapping):
                continue
            for fname, gfield in fields.items():
                ann = annotation_of(gfield)
                self.by_field[(type_.name, fname)] = ann
                if is_object_type(type_):
                    coord = f"{type_.name}.{fname}"
                    self.coordinates.append(coord)
                    if ann.tags:
                        self.tags[coord] = ann.tags
        for type_ in schema.type_map.values():  # interface tags reach implementations
            if type_.name.startswith("__") or is_object_type(type_):
                continue
            if not is_composite_type(type_) or not hasattr(type_, "fields"):
                continue
            for fname in getattr(type_, "fields", {}):
                tags = self.by_field[(type_.name, fname)].tags
                if not tags:
                    continue
                for impl in schema.get_possible_types(type_):  # type: ignore[arg-type]
                    self.tags.setdefault(f"{impl.name}.{fname}", tags)

    def get(self, type_name: str, field_name: str) -> FieldAnnotation:
        """The annotation of ``type_name.field_name`` (empty if none)."""
        return self.by_field.get((type_name, field_name), _EMPTY)


_EMPTY = FieldAnnotation()


@dataclass
class _Summary:
    counts: Counter[str] = field(default_factory=Counter)
    aliases: int = 0
    fields: int = 0
    depth: int = 0
    cost: int = 0
    max_list: int = 0
    ids: list[str] = field(default_factory=list)
    introspection: bool = False

    def add(self, other: _Summary, times: int = 1) -> None:
        for key, n in other.counts.items():
            self.counts[key] += n * times
        self.aliases += other.aliases * times
        self.fields += other.fields * times
        self.cost += other.cost * times
        self.depth = max(self.depth, other.depth)
        self.max_list = max(self.max_list, other.max_list)
        self.ids.extend(other.ids[: 100 - len(self.ids)])
        self.introspection = self.introspection or other.introspection


def _is_list(type_: Any) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


class _Walker:
    def __init__(
        self,
        schema: GraphQLSchema,
        doc_fragments: Mapping[str, Any],
        variables: Any,
        annotations: Annotations,
        config: AnalysisConfig,
    ) -> None:
        self.schema = schema
        self.fragments = doc_fragments
        self.variables = variables
        self.annotations = annotations
        self.config = config
        self.memo: dict[str, _Summary] = {}

    def included(self, node: Any) -> bool:
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        if skip is not None and skip.get("if") is True:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return not (include is not None and include.get("if") is False)

    def concrete(self, parent: Any) -> list[GraphQLObjectType]:
        if isinstance(parent, GraphQLObjectType):
            return [parent]
        return list(self.schema.get_possible_types(parent))

    def walk(self, sel: SelectionSetNode, parent: Any, level: int) -> _Summary:
        if level > self.config.hard_depth:
            raise BadRequest(f"query nesting exceeds {self.config.hard_depth} levels")
        out = _Summary()
        for node in sel.selections:
            if not self.included(node):
                continue
            if isinstance(node, FieldNode):
                out.add(self.field(node, parent, level))
            elif isinstance(node, InlineFragmentNode):
                cond = node.type_condition
                narrowed = self.schema.get_type(cond.name.value) if cond else parent
                out.add(self.walk(node.selection_set, narrowed or parent, level))
            elif isinstance(node, FragmentSpreadNode):
                out.add(self.spread(node.name.value, level))
        return out

    def spread(self, name: str, level: int) -> _Summary:
        memo = self.memo.get(name)
        if memo is None:
            frag = self.fragments[name]
            target = self.schema.get_type(frag.type_condition.name.value)
            memo = self.walk(frag.selection_set, target, level)
            self.memo[name] = memo
        if level + memo.depth > self.config.hard_depth:
            raise BadRequest(f"query nesting exceeds {self.config.hard_depth} levels")
        return memo

    def field(self, node: FieldNode, parent: Any, level: int) -> _Summary:
        name = node.name.value
        out = _Summary()
        if name.startswith("__"):
            out.introspection = name in ("__schema", "__type")
            return out
        gfield = getattr(parent, "fields", {}).get(name)
        if gfield is None:  # validation rejects this; be safe if it was skipped
            raise BadRequest(f"cannot query field {name!r} on type {parent.name!r}")
        for type_ in self.concrete(parent):
            if name in type_.fields:
                out.counts[f"{type_.name}.{name}"] += 1
        out.fields = 1
        out.aliases = 1 if node.alias else 0
        ann = self.annotations.get(parent.name, name)
        try:
            args = get_argument_values(gfield, node, self.variables)
        except GraphQLError as exc:
            raise BadRequest(exc.message) from exc
        named = get_named_type(gfield.type)
        size = 1
        if _is_list(gfield.type):
            slicing = ann.slicing_arguments or self.config.slicing_arguments
            given = [int(args[a]) for a in slicing if isinstance(args.get(a), int)]
            if given:
                size = max(max(given), 0)
                out.max_list = size
            else:
                size = ann.assumed_size or self.config.default_list_size
        if is_composite_type(named):
            for arg in self.config.id_arguments:
                value = args.get(arg)
                if isinstance(value, str | int) and not isinstance(value, bool):
                    out.ids.append(str(value))
        weight = ann.weight if ann.weight is not None else (1 if is_composite_type(named) else 0)
        child = _Summary()
        if node.selection_set is not None and is_composite_type(named):
            child = self.walk(node.selection_set, named, level + 1)
        out.cost = size * (weight + child.cost)
        out.depth = 1 + child.depth
        child.cost = 0  # already folded into this field's cost
        child.depth = 0
        out.add(child)
        return out


PURPOSE_DIRECTIVE = "purpose"
PURPOSE_SDL = "directive @purpose(name: String!) on QUERY | MUTATION | SUBSCRIPTION"


def operation_purpose(op: OperationDefinitionNode, variables: Any = None) -> str | None:
    """The purpose an operation declares with ``@purpose(name: "…")``.

    Example:
        >>> from graphql import parse
        >>> op = parse('query Q @purpose(name: "support") { me }').definitions[0]
        >>> operation_purpose(op)
        'support'
    """
    for directive in op.directives or ():
        if directive.name.value != PURPOSE_DIRECTIVE:
            continue
        for arg in directive.arguments or ():
            if arg.name.value == "name":
                value = value_from_ast_untyped(arg.value, getattr(variables, "coerced",
                                                                  variables))
                if not isinstance(value, str) or not value:
                    raise BadRequest("@purpose(name:) must be a non-empty string")
                return value
    return None


def select_operation(doc: Any, operation_name: str | None) -> OperationDefinitionNode:
    """The operation to run, as graphql-core picks it.

    Raises:
        BadRequest: no such operation, or several without a name given.
    """
    ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        if len(ops) != 1:
            raise BadRequest("must provide operation name if query contains multiple operations")
        return ops[0]
    for op in ops:
        if op.name and op.name.value == operation_name:
            return op
    raise BadRequest(f"unknown operation named {operation_name!r}")


def analyze(
    schema: GraphQLSchema,
    document: Any,
    operation_name: str | None,
    variables: Any,
    annotations: Annotations | None = None,
    config: AnalysisConfig | None = None,
) -> Operation:
    """Analyse the operation of a *validated* document.

    Args:
        schema: the schema.
        document: the parsed, validated document.
        operation_name: which operation, when there are several.
        variables: coerced variable values (graphql-core ``VariableValues``,
            or a plain dict of coerced values).
        annotations: annotations of ``schema`` (read now if not given).
        config: analysis knobs.

    Raises:
        BadRequest: unknown operation, bad arguments, or nesting beyond
            ``config.hard_depth``.
    """
    config = config or AnalysisConfig()
    annotations = annotations or Annotations(schema)
    op = select_operation(document, operation_name)
    root = schema.get_root_type(op.operation)
    if root is None:
        raise BadRequest(f"schema does not support {op.operation.value} operations")
    fragments = {
        d.name.value: d for d in document.definitions if d.kind == "fragment_definition"
    }
    if isinstance(variables, Mapping):
        from graphql.execution.values import VariableValues

        variables = VariableValues({}, dict(variables))
    walker = _Walker(schema, fragments, variables, annotations, config)
    try:
        summary = walker.walk(op.selection_set, root, 1)
    except RecursionError as exc:
        raise BadRequest("query is nested too deeply") from exc
    codes = {c: annotations.tags[c] for c in summary.counts if c in annotations.tags}
    return Operation(
        protocol="graphql",
        type=op.operation.value,
        name=op.name.value if op.name else None,
        fields=dict(summary.counts),
        complexity={
            "depth": summary.depth,
            "aliases": summary.aliases,
            "fields": summary.fields,
            "cost": summary.cost,
            "max_list": summary.max_list,
        },
        code_tags=codes,
        probed_ids=tuple(summary.ids[: config.max_probed_ids]),
        introspection=summary.introspection,
    )
