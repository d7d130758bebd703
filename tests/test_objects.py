"""Object shapes (fieldguard.objects) and the verdict cache a Guard shares."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

import pytest

from fieldguard.demo.data import Store
from fieldguard.objects import (
    TypeSpec,
    engine_item,
    freeze,
    jsonable,
    read_attr,
    read_shapes,
    shape_reader,
)

USER = TypeSpec("User", subject="id", owner="id", attrs=("privacy", "visibility", "consent"))
POST = TypeSpec("Post", subject="authorId", owner="authorId", attrs=("visibility",))


@dataclass
class Post:
    author_id: str | int | None
    visibility: Any = "public"


class Loose:
    """Declares nothing: attributes exist only on instances."""

    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)


class Annotated:
    """Declares attributes (annotations only) that an instance may lack."""

    id: str
    privacy: dict[str, str]
    visibility: str
    consent: list[str]

    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)


class Vis(enum.StrEnum):
    PUBLIC = "public"


def reference_items(spec: TypeSpec, objs: list[Any], caller: str | None) -> list[str]:
    """What the engine sees of each object, by the documented rules (read_attr,
    relation from the owner): the ground truth shapes must agree with."""
    out = []
    for obj in objs:
        owner = read_attr(obj, spec.owner) if spec.owner else None
        relation = "self" if caller is not None and owner is not None and \
            str(owner) == caller else "other"
        attrs = {a: jsonable(read_attr(obj, a)) for a in spec.attrs}
        out.append(json.dumps({"type": spec.name, "relation": relation, "attrs": attrs},
                              sort_keys=True))
    return out


def check_against_reference(spec: TypeSpec, objs: list[Any], caller: str | None,
                            *, dedup: bool = True) -> None:
    shapes = read_shapes(spec, objs, caller)
    expected = reference_items(spec, objs, caller)
    shape_of = {pos: shape for shape, pos in shapes.first.items()}
    assert len(shapes.position) == len(objs)
    for i, pos in enumerate(shapes.position):
        # the engine item of a shape is its first object's: the same JSON
        item = shapes.item(spec, shape_of[pos])
        assert json.dumps(item, sort_keys=True) == expected[i]
    if not dedup:  # some equal JSON may take two shapes (an entry more, never a wrong verdict)
        return
    # objects with the same JSON share a shape (no needless engine work)
    first_with: dict[str, int] = {}
    for i, text in enumerate(expected):
        first_with.setdefault(text, shapes.position[i])
        assert shapes.position[i] == first_with[text]


def test_demo_users_dedupe_to_few_shapes_with_the_documented_json() -> None:
    users = Store.generate(users=300, posts_per_user=0).page(first=300)
    shapes = read_shapes(USER, users, "u7")
    assert len(shapes.first) < 20
    assert shapes.subjects == [u.id for u in users]
    check_against_reference(USER, users, "u7")
    check_against_reference(USER, users, None)
    own = next(s for s in shapes.first if s[1] == "self")
    me = next(u for u in users if u.id == "u7")
    assert shapes.item(USER, own)["attrs"]["privacy"] == me.privacy


def test_fallbacks_mappings_snake_case_missing_and_undeclared_attributes() -> None:
    objs: list[Any] = [
        {"authorId": "u1", "visibility": "public"},         # mapping, GraphQL name
        {"author_id": "u1", "visibility": "public"},        # mapping, snake_case
        {"visibility": "members"},                           # mapping without owner
        Post("u1"), Post("u2", "members"), Post(None),       # declared snake_case
        Loose(authorId="u1", visibility="public"),           # undeclared, GraphQL name
        Loose(author_id="u2"),                               # undeclared, missing attr
    ]
    shapes = read_shapes(POST, objs, "u1")
    assert shapes.subjects == ["u1", "u1", None, "u1", "u2", None, "u1", "u2"]
    assert [shapes.rows[i][0] for i in range(len(objs))] == \
        ["u1", "u1", None, "u1", "u2", None, "u1", "u2"]
    check_against_reference(POST, objs, "u1")
    # batches of one class take the C path; it must agree with mixed batches
    posts = [Post("u1"), Post("u2", "members"), Post(None), Post(7)]
    check_against_reference(POST, posts, "u1")
    check_against_reference(POST, posts, "7")
    assert read_shapes(POST, posts, "7").subjects == ["u1", "u2", None, "7"]
    assert read_shapes(POST, [], "u1").position == []


def test_declared_attribute_missing_on_an_instance_reads_none() -> None:
    full = Annotated(id="u1", privacy={"email": "nobody"}, visibility="public", consent=[])
    partial = Annotated(id="u2", privacy={"email": "nobody"})
    assert shape_reader(USER, Annotated).fast is not None
    assert shape_reader(USER, Annotated)(partial) == ("u2", "u2", {"email": "nobody"}, None, None)
    check_against_reference(USER, [full, partial, full], "u1")
    check_against_reference(USER, [partial, full], "u1")


def test_values_freeze_apart_when_the_engine_would_see_them_apart() -> None:
    # True == 1 == 1.0 in Python, not in Rego; order of keys does not matter
    values: list[Any] = [True, 1, 1.0, "1", None, [1], ["1"], (True,), {"a": 1}, {"a": True},
                         {"a": "x", "b": "y"}, {"b": "y", "a": "x"}, {"a": ["x"]},
                         [["a", ["x"]]], {"a": None}, {1: "x"}, {"1": "x"}, {True: "x"},
                         Vis.PUBLIC, "public", {"s": {"PUBLIC"}}, []]
    objs = [Post("u9", v) for v in values]
    check_against_reference(POST, objs, "u1", dedup=False)
    check_against_reference(POST, objs[::-1], "u1", dedup=False)
    # equal JSON never splits the common cases
    assert freeze({"a": "x", "b": None}) == freeze({"a": "x", "b": None})
    assert freeze(["x", None]) == freeze(("x", None))


@pytest.mark.parametrize("column", [
    [{"a": "x"}, {"a": "x", "b": "y"}],           # different key sets
    [{"a": "x", "b": "y"}, {"b": "y", "a": "x"}],  # same keys, other order
    [{"a": "x"}, {"b": "x"}],                      # same size, other keys
    [{"a": "x"}, {"a": 1}],                        # a non-string value
    [{"a": "x"}, {"a": None}],                     # a null value
    [{}, {}],
    [{"a": "x"}, None, "x"],                       # mixed kinds
    [["x"], ["x", None], ("x",), [1], [True]],
    [{"a": Vis.PUBLIC}, {"a": "public"}, [Vis.PUBLIC], ["public"]],  # JSON has no enums
])
def test_columns_agree_with_one_by_one_freezing(column: list[Any]) -> None:
    objs = [Post("u2", v) for v in column]
    check_against_reference(POST, objs, "u1", dedup=False)
    single = [read_shapes(POST, [o], "u1") for o in objs]
    batch = read_shapes(POST, objs, "u1")
    items = [json.dumps(s.item(POST, next(iter(s.first))), sort_keys=True) for s in single]
    for i, pos in enumerate(batch.position):
        assert items[i] == items[pos]


def test_engine_item_is_the_documented_json() -> None:
    post = Post("u1", {"email": "nobody"})
    shapes = read_shapes(POST, [post], "u1")
    shape = next(iter(shapes.first))
    assert engine_item(POST, shape, shapes.rows[0]) == {
        "type": "Post", "relation": "self", "attrs": {"visibility": {"email": "nobody"}}}
