"""Static analysis of operations: coordinates, complexity, annotations."""

from __future__ import annotations

import time

import pytest
import strawberry
from graphql import build_schema, parse

from fieldguard.demo.sdl_schema import build_sdl_schema
from fieldguard.errors import BadRequest
from fieldguard.plugins.gql.analysis import AnalysisConfig, Annotations, analyze


@pytest.fixture(scope="module")
def schema():  # type: ignore[no-untyped-def]
    return build_sdl_schema()


def test_interface_and_union_reach_every_concrete_type(schema) -> None:  # type: ignore[no-untyped-def]
    op = analyze(schema, parse('{ node(id: "x") { id } search(text: "a") { ... on Node { id } } }'),
                 None, {})
    assert {"User.id", "Post.id", "Comment.id"} <= set(op.fields)
    assert "Node.id" not in op.fields  # interfaces are not coordinates of values


def test_include_and_skip_follow_variables(schema) -> None:  # type: ignore[no-untyped-def]
    doc = parse("query Q($a: Boolean!) { me { email @include(if: $a) phone @skip(if: $a) } }")
    with_a = analyze(schema, doc, None, {"a": True})
    without = analyze(schema, doc, None, {"a": False})
    assert "User.email" in with_a.fields and "User.phone" not in with_a.fields
    assert "User.phone" in without.fields and "User.email" not in without.fields


def test_complexity_counts_aliases_after_fragment_expansion(schema) -> None:  # type: ignore[no-untyped-def]
    doc = parse("{ me { ...A ...A } } fragment A on User { x: id y: handle }")
    op = analyze(schema, doc, None, {})
    assert op.complexity["aliases"] == 4
    assert op.fields["User.id"] == 2


def test_fragment_bomb_is_analysed_in_linear_time(schema) -> None:  # type: ignore[no-untyped-def]
    frags = "fragment F0 on User { id }\n" + "\n".join(
        f"fragment F{i} on User {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, 40))
    doc = parse("{ me { ...F39 } }\n" + frags)
    start = time.perf_counter()
    op = analyze(schema, doc, None, {})
    elapsed = time.perf_counter() - start
    assert op.fields["User.id"] == 2**39      # the count reflects the full expansion
    assert elapsed < 5  # generous: the expansion itself would never finish


def test_cost_follows_list_size_and_cost_directives(schema) -> None:  # type: ignore[no-untyped-def]
    op = analyze(schema, parse("{ users(first: 7) { id posts(first: 3) { id } } }"), None, {})
    # users: weight 1, size 7; posts: weight 1, size 3 → 7 * (1 + 3 * 1)
    assert op.complexity["cost"] == 28
    assert op.complexity["max_list"] == 7
    search = analyze(schema, parse('{ search(text: "a", first: 2) { __typename } }'), None, {})
    assert search.complexity["cost"] == 2 * 2   # @cost(weight: "2"), slicing default `first`
    comments = analyze(schema, parse('{ node(id: "p") { ... on Post { comments { id } } } }'),
                       None, {})
    assert comments.complexity["cost"] == 1 + 5   # node + @listSize(assumedSize: 5) comments


def test_nesting_beyond_the_hard_cap_is_refused(schema) -> None:  # type: ignore[no-untyped-def]
    q = "{ me { " + "posts { author { " * 20 + "id" + " } }" * 20 + " } }"
    with pytest.raises(BadRequest):
        analyze(schema, parse(q), None, {}, config=AnalysisConfig(hard_depth=16))


def test_probed_ids_are_reported(schema) -> None:  # type: ignore[no-untyped-def]
    op = analyze(schema, parse('{ a: user(id: "u1") { id } b: user(id: "u2") { id } }'),
                 None, {})
    assert op.probed_ids == ("u1", "u2")


def test_sdl_classify_tags_and_interface_inheritance() -> None:
    s = build_schema('''
      directive @classify(tags: [String!]!) on FIELD_DEFINITION
      interface Contact { email: String @classify(tags: ["contact"]) }
      type User implements Contact { email: String name: String @classify(tags: ["pii"]) }
      type Query { me: User }''')
    ann = Annotations(s)
    assert ann.tags["User.name"] == ("pii",)
    assert ann.tags["User.email"] == ("contact",)


@strawberry.type
class Person:
    nickname: str = strawberry.field(metadata={"fieldguard": {"tags": ["pii"], "cost": 3}})


@strawberry.type
class PersonQuery:
    @strawberry.field
    def person(self) -> Person:
        return Person(nickname="x")


def test_strawberry_metadata_tags() -> None:
    ann = Annotations(strawberry.Schema(query=PersonQuery)._schema)
    assert ann.tags["Person.nickname"] == ("pii",)
    assert ann.get("Person", "nickname").weight == 3


def test_unknown_operation_is_a_bad_request(schema) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadRequest):
        analyze(schema, parse("query A { me { id } }"), "B", {})
