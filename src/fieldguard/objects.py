"""Per-object decisions: object shapes and the verdict cache shared by requests.

The objects decision (``data.fieldguard.objects``) sees an object only through
its *shape*: its type, its relation to the caller (``self`` when the type's
``owner`` attribute equals the caller's id, else ``other``) and the values of
the attributes ``classification.types.<Type>.attrs`` lists. Objects of one
shape get one verdict, so a request asks the engine once per new shape, not
once per object.

This module turns objects into shape keys fast (one compiled reader per type
spec and Python class, then C loops over each attribute of a batch), builds
the engine's view of a shape, and holds the :class:`VerdictCache` a
:class:`~fieldguard.guard.Guard` may share between requests: the objects input
carries only the caller, the checked coordinates and the shapes, so under one
deterministic policy revision a verdict depends on nothing else.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Post:
    ...     author_id: str
    ...     visibility: str
    >>> spec = TypeSpec("Post", subject="authorId", owner="authorId", attrs=("visibility",))
    >>> posts = [Post("u1", "public"), Post("u2", "public"), Post("u3", "public")]
    >>> shapes = read_shapes(spec, posts, caller_id="u1")
    >>> list(shapes.first.values()), shapes.position, shapes.subjects
    ([0, 1], [0, 1, 1], ['u1', 'u2', 'u3'])
    >>> [shapes.item(spec, shape) for shape in shapes.first]  # what the engine sees
    [{'type': 'Post', 'relation': 'self', 'attrs': {'visibility': 'public'}}, \
{'type': 'Post', 'relation': 'other', 'attrs': {'visibility': 'public'}}]
"""

from __future__ import annotations

import enum
import functools
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, count, repeat
from operator import attrgetter, itemgetter
from typing import Any

from fieldguard.policies.contract import ObjectVerdict
from fieldguard.policies.source import PolicySet


@dataclass(frozen=True)
class TypeSpec:
    """How the objects decision sees one object type (``classification.types``).

    Attributes:
        name: the type name.
        subject: attribute naming the data subject (for the audit trail).
        owner: attribute compared with the caller's id (relation ``self``).
        attrs: attributes the object rules read: the deduplication key.
    """

    name: str
    subject: str | None = None
    owner: str | None = None
    attrs: tuple[str, ...] = ()


#: A shape key: ``(type, relation, *frozen attribute values)``.
Shape = tuple[Any, ...]

_MISSING = object()


@functools.lru_cache(maxsize=1024)
def snake_case(name: str) -> str:
    """``authorId`` → ``author_id`` (GraphQL names to Python attributes)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def read_attr(obj: Any, name: str) -> Any:
    """``obj[name]`` for mappings, else the attribute ``name`` or its
    snake_case spelling (so ``authorId`` finds ``author_id``).

    Example:
        >>> class Post: author_id = "u1"
        >>> read_attr(Post(), "authorId"), read_attr({"authorId": "u2"}, "authorId")
        ('u1', 'u2')
    """
    if isinstance(obj, Mapping):
        value = obj.get(name, _MISSING)
        return obj.get(snake_case(name)) if value is _MISSING else value
    value = getattr(obj, name, _MISSING)
    return getattr(obj, snake_case(name), None) if value is _MISSING else value


def jsonable(value: Any) -> Any:
    """``value`` as the JSON the engine sees (enums by value, sets sorted,
    objects by their public attributes, anything else as a string)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if hasattr(value, "__dict__"):
        return {k: jsonable(v) for k, v in vars(value).items() if not k.startswith("_")}
    return str(value)


class _Tag:
    """A marker that only equals itself, so tagged keys never meet user data."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_JSON = _Tag("json")
_PLAIN = frozenset((str, type(None)))
_STR = frozenset((str,))


def freeze(value: Any) -> Any:
    """A hashable stand-in for an attribute value: two values freeze equal
    only when the engine would see the same JSON.

    Strings and None are their own key; flat dicts (string keys, string or
    null values) are ``(keys, values)`` in insertion order (order only ever
    splits a shape in two, which costs an entry, never a wrong verdict) and
    lists of strings a tuple; numbers carry their type (``True == 1`` in
    Python, not in Rego); anything else is keyed by its canonical JSON text.

    Example:
        >>> freeze({"email": "nobody"})
        (('email',), ('nobody',))
        >>> freeze({"email": "nobody"}) == freeze({"email": "nobody"})
        True
        >>> freeze(True) == freeze(1), freeze({"a": True}) == freeze({"a": 1})
        (False, False)
    """
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind is dict:
        values = tuple(value.values())
        if _STR.issuperset(map(type, value)) and _all_plain(values):
            return (tuple(value), values)
    elif kind is list or kind is tuple:
        if _all_plain(value):
            return tuple(value)
    elif kind is bool or kind is int or kind is float:
        return (kind, value)
    return (_JSON, json.dumps(jsonable(value), sort_keys=True))


def _declared(kind: type) -> set[str]:
    names: set[str] = set()
    for klass in kind.__mro__:
        names.update(getattr(klass, "__annotations__", {}))
        names.update(vars(klass))
    return names


def _getter(name: str) -> Callable[[Any], Any]:
    return lambda obj: getattr(obj, name, None)


def _reader(name: str) -> Callable[[Any], Any]:
    return lambda obj: read_attr(obj, name)


def _none(obj: Any) -> None:
    return None


class ShapeReader:
    """Reads ``(owner, subject, *attrs)`` from objects of one class; see
    :func:`shape_reader`.

    Attributes:
        fast: one C call reading every name (an :func:`operator.attrgetter`)
            when the class declares them all, else None; it raises
            :class:`AttributeError` for an object that lacks one.
    """

    __slots__ = ("_slow", "fast")

    def __init__(self, fast: Callable[[Any], tuple[Any, ...]] | None,
                 slow: Sequence[Callable[[Any], Any]]) -> None:
        self.fast = fast
        self._slow = slow

    def __call__(self, obj: Any) -> tuple[Any, ...]:
        if self.fast is not None:
            try:
                return self.fast(obj)
            except AttributeError:  # declared, but not set on this object
                pass
        return tuple([read(obj) for read in self._slow])


@functools.lru_cache(maxsize=1024)
def shape_reader(spec: TypeSpec, kind: type[Any]) -> ShapeReader:
    """The reader of ``(owner, subject, *attrs)`` for objects of class
    ``kind``, resolved once per (spec, class).

    A name the class declares (annotation, slot, property, class attribute),
    or whose snake_case spelling it declares, is read with one
    :func:`operator.attrgetter` call for all names; an object missing one of
    them reads None. Mappings and names the class does not declare go through
    :func:`read_attr` (the name, then its snake_case spelling, else None).

    Example (owner, subject, then the attributes):
        >>> from collections import namedtuple
        >>> Comment = namedtuple("Comment", "author_id visibility")
        >>> spec = TypeSpec("Comment", subject="authorId", owner="authorId",
        ...                 attrs=("visibility",))
        >>> shape_reader(spec, Comment)(Comment("u1", "public"))
        ('u1', 'u1', 'public')
        >>> shape_reader(spec, dict)({"authorId": "u2"})
        ('u2', 'u2', None)
    """
    # owner and subject are optional (None or ""); attrs are always read
    names = (spec.owner or None, spec.subject or None, *spec.attrs)
    if issubclass(kind, Mapping):
        return ShapeReader(None, [_none if n is None else _reader(n) for n in names])
    declared = _declared(kind)
    resolved = [None if n is None else
                next((c for c in (n, snake_case(n)) if c in declared), None) for n in names]
    slow = [_none if n is None else _getter(r) if r else _reader(n)
            for n, r in zip(names, resolved, strict=True)]
    if None in resolved:  # an undeclared name, or no owner/subject: name by name
        return ShapeReader(None, slow)
    # two names or more, so the getter returns a tuple
    return ShapeReader(attrgetter(*[r for r in resolved if r is not None]), slow)


_RELATION = {True: "self", False: "other"}
_DICT = frozenset((dict,))
_SEQUENCES = frozenset((list, tuple))


def _all_plain(values: Iterable[Any]) -> bool:
    """True when every value is a string or None (``str.join`` checks the
    common all-string case in C, string subclasses included, which JSON
    encodes by their text)."""
    values = list(values)
    try:
        "".join(values)
    except TypeError:
        return _PLAIN.issuperset(map(type, values))
    return True


def _freeze_column(col: Sequence[Any]) -> Sequence[Any]:
    """:func:`freeze` applied to every value of one attribute, with C loops
    for the common columns (all strings, all flat dicts with the same keys in
    the same order, all string lists)."""
    kinds = set(map(type, col))
    if kinds <= _PLAIN:
        return col
    if kinds <= _DICT:
        # the same keys in all dicts (every key of the first one, and as many):
        # read the values in the first one's key order, in C
        layout = tuple(col[0])
        if len(set(map(len, col))) == 1 and _STR.issuperset(map(type, layout)):
            try:
                values = list(map(itemgetter(*layout), col)) if len(layout) > 1 else \
                    [(d[layout[0]],) for d in col] if layout else [()] * len(col)
            except KeyError:
                values = None
            if values is not None and _all_plain(chain.from_iterable(values)):
                return list(zip(repeat(layout), values))
    elif kinds <= _SEQUENCES and _all_plain(chain.from_iterable(col)):
        return list(map(tuple, col))
    return list(map(freeze, col))


@dataclass(slots=True)
class Shapes:
    """A batch of objects of one type as the objects decision sees them.

    Attributes:
        first: each distinct shape, in order of appearance, with the position
            of its first object.
        position: for each object, the position of the first object of its
            shape (so objects map to verdicts without hashing shapes again).
        rows: ``(owner, subject, *attrs)`` as read from each object.
        subjects: the data-subject id of each object (a string, or None).
    """

    first: dict[Shape, int]
    position: list[int]
    rows: list[tuple[Any, ...]]
    subjects: list[str | None]

    def item(self, spec: TypeSpec, shape: Shape) -> dict[str, Any]:
        """The engine's view of ``shape`` (see :func:`engine_item`)."""
        return engine_item(spec, shape, self.rows[self.first[shape]])


def read_shapes(spec: TypeSpec, objs: Sequence[Any], caller_id: str | None) -> Shapes:
    """The shapes and data-subject ids of ``objs``.

    Works column by column (one attribute of every object at a time) so that
    the per-object work runs in C: reading (one ``attrgetter`` call per
    object), freezing, comparing owners, building and hashing the keys.
    """
    if len(objs) < 2:
        if not objs:
            return Shapes({}, [], [], [])
        # one object (GraphQL resolvers ask for them one by one): no columns
        kind: Any = type(objs[0])
        row = shape_reader(spec, kind)(objs[0])
        owner, subject = row[0], row[1]
        relation = "self" if caller_id is not None and owner is not None \
            and str(owner) == caller_id else "other"
        key = (spec.name, relation, *[v if type(v) in _PLAIN else freeze(v) for v in row[2:]])
        return Shapes({key: 0}, [0], [row], [None if subject is None else str(subject)])
    kinds = set(map(type, objs))
    rows: list[tuple[Any, ...]] | None = None
    if len(kinds) == 1:
        reader = shape_reader(spec, kinds.pop())
        if reader.fast is not None:
            try:
                rows = list(map(reader.fast, objs))
            except AttributeError:  # some object lacks a declared attribute
                rows = None
        if rows is None:
            rows = list(map(reader, objs))
    else:
        rows = []
        for obj in objs:
            kind = type(obj)  # a class: hashable, an lru_cache key
            rows.append(shape_reader(spec, kind)(obj))
    owners, subject_ids, *attrs = zip(*rows, strict=True)
    owner_ids = None if None in owners else list(map(str, owners))
    if caller_id is None or (owner_ids is not None and caller_id not in owner_ids):
        relations: Sequence[str] = ["other"] * len(rows)
    elif owner_ids is None:
        relations = ["self" if o is not None and str(o) == caller_id else "other"
                     for o in owners]
    else:
        relations = list(map(_RELATION.__getitem__, map(caller_id.__eq__, owner_ids)))
    subjects: list[str | None]
    if spec.subject == spec.owner and owner_ids is not None:
        subjects = list(owner_ids)
    elif None in subject_ids:
        subjects = [None if s is None else str(s) for s in subject_ids]
    else:
        subjects = list(map(str, subject_ids))
    keys = zip(repeat(spec.name), relations, *map(_freeze_column, attrs))
    first: dict[Shape, int] = {}
    position = list(map(first.setdefault, keys, count()))
    return Shapes(first, position, rows, subjects)


def engine_item(spec: TypeSpec, key: Shape, vals: tuple[Any, ...]) -> dict[str, Any]:
    """One entry of the objects input's ``objects`` list (see
    ``docs/policy-contract.md``): the type, the relation and the listed
    attributes as JSON."""
    attrs = {a: jsonable(v) for a, v in zip(spec.attrs, vals[2:], strict=True)}
    return {"type": spec.name, "relation": key[1], "attrs": attrs}


# -- the shared cache ----------------------------------------------------------

#: Builtins whose result is not a function of the input and the policy: a
#: policy calling any of them makes verdicts uncacheable.
NONDETERMINISTIC_BUILTINS = (
    "time.now_ns", "http.send", "rand.intn", "uuid.rfc4122", "opa.runtime",
    "net.lookup_ip_addr",
)
_NONDETERMINISTIC = re.compile(
    r"(?<![\w.])(" + "|".join(re.escape(b) for b in NONDETERMINISTIC_BUILTINS) + r")(?!\w)"
)

#: Engines that evaluate exactly the :class:`PolicySet` fieldguard loaded
#: into them, so their revision names everything a decision depends on.
OWNING_ENGINES = frozenset(("regorus", "opa-embedded"))

#: Verdict cache entries a Guard on an owning engine gets by default (a few
#: MB at most: an entry is a shape key and a small verdict).
DEFAULT_VERDICT_CACHE = 10_000


def nondeterministic_calls(policy: PolicySet | None) -> list[str]:
    """``module: builtin`` for each non-deterministic builtin the policy's
    modules mention (comments included: a false alarm only costs the cache).

    Example:
        >>> ps = PolicySet.from_sources([("p.rego", "package p\\nt := time.now_ns()\\n")])
        >>> nondeterministic_calls(ps)
        ['p.rego: time.now_ns']
    """
    if policy is None:
        return []
    found: list[str] = []
    for module in policy.modules:
        names = sorted(set(_NONDETERMINISTIC.findall(module.text)))
        found.extend(f"{module.path}: {n}" for n in names)
    return found


#: A cache key: (policy revision, caller JSON, checked coordinates, shape).
CacheKey = tuple[str, str, tuple[str, ...], Shape]


class VerdictCache:
    """A bounded, thread-safe LRU map from (policy revision, caller part of
    the objects input, checked coordinates, shape) to a verdict.

    The objects decision is a pure function of that key when the policy is
    deterministic, so a verdict found here is the one the engine would give.
    A policy reload changes the revision: old entries are never hit again and
    age out.

    Example:
        >>> from fieldguard.policies.contract import HIDDEN
        >>> cache = VerdictCache(2)
        >>> prefix = ("sha256:1", '{"subject": null}', ("User.email",))
        >>> cache.put_many(prefix, {("User", "other", "public"): HIDDEN})
        >>> cache.get_many(prefix, [("User", "other", "public"), ("User", "self", "public")])
        {('User', 'other', 'public'): ObjectVerdict(visible=False, fields={})}
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("a verdict cache needs room for at least one entry")
        self.maxsize = maxsize
        self._entries: OrderedDict[CacheKey, ObjectVerdict] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get_many(
        self, prefix: tuple[str, str, tuple[str, ...]], shapes: Iterable[Shape]
    ) -> dict[Shape, ObjectVerdict]:
        """The cached verdicts of ``shapes`` under ``prefix`` (absent ones left out)."""
        revision, caller, coords = prefix
        found: dict[Shape, ObjectVerdict] = {}
        entries = self._entries
        with self._lock:
            for shape in shapes:
                key = (revision, caller, coords, shape)
                verdict = entries.get(key)
                if verdict is None:
                    self.misses += 1
                    continue
                entries.move_to_end(key)
                found[shape] = verdict
            self.hits += len(found)
        return found

    def put_many(
        self, prefix: tuple[str, str, tuple[str, ...]], verdicts: Mapping[Shape, ObjectVerdict]
    ) -> None:
        """Remember ``verdicts`` under ``prefix``, evicting the least recently used."""
        revision, caller, coords = prefix
        entries = self._entries
        with self._lock:
            for shape, verdict in verdicts.items():
                key = (revision, caller, coords, shape)
                entries[key] = verdict
                entries.move_to_end(key)
            while len(entries) > self.maxsize:
                entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every verdict."""
        with self._lock:
            self._entries.clear()


def caller_key(doc: Mapping[str, Any]) -> str:
    """The caller part of an objects input as canonical JSON (a cache key)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


__all__ = [
    "NONDETERMINISTIC_BUILTINS",
    "OWNING_ENGINES",
    "Shape",
    "ShapeReader",
    "Shapes",
    "TypeSpec",
    "VerdictCache",
    "caller_key",
    "engine_item",
    "freeze",
    "jsonable",
    "nondeterministic_calls",
    "read_attr",
    "read_shapes",
    "shape_reader",
    "snake_case",
]
