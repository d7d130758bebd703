"""The substituted resolvers, one kind of work each, on a small schema whose
policy gives each field a different effect."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import GraphQLError, build_schema

from fieldguard.audit import MemorySink
from fieldguard.context import Caller, Client, Subject
from fieldguard.guard import Guard
from fieldguard.plugins.gql import fields as F
from fieldguard.plugins.graphql_core import GraphQLGuard
from fieldguard.policies.source import PolicySet

SDL = """
type Query { me: Person }
type Person { name: String nick: String! email: String phone: String notes: String }
"""
REGO = """package fieldguard
effects := {
  "Query.me": {"effect": "allow"},
  "Person.name": {"effect": "allow"},
  "Person.nick": {"effect": "deny", "reason": "nicknames are private"},
  "Person.email": {"effect": "mask", "mask": "email"},
  "Person.phone": {"effect": "allow"},
  "Person.notes": {"effect": "deny", "reason": "internal"},
}
plan := {"allow": true, "outcome": "allow", "status": 200,
         "fields": {f.coordinate: effects[f.coordinate] | some f in input.fields}}
"""
CLASSIFICATION = {"coordinates": {"Person.email": {"tags": ["pii"]},
                                  "Person.phone": {"tags": ["pii"]}}}
ME = {"name": "Ada", "nick": "ada", "email": "ada@example.org", "phone": "+44 1",
      "notes": "vip"}
WHO = Caller(Subject("u1"), Client("203.0.113.9"))


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def gg(sink: MemorySink) -> GraphQLGuard:
    policy = PolicySet.from_sources([("p.rego", REGO)],
                                    {"policy": {"classification": CLASSIFICATION}})
    return GraphQLGuard(Guard(policy=policy, audit=sink), build_schema(SDL),
                        caller=lambda ctx: ctx)


def run(gg: GraphQLGuard, query: str) -> Any:
    return gg.execute_sync(query, root_value={"me": ME}, context_value=WHO)


def test_denied_nullable_values_are_null_with_one_error_per_reason(gg: GraphQLGuard) -> None:
    r = run(gg, "{ me { name a: notes b: notes } }")
    assert r.data == {"me": {"name": "Ada", "a": None, "b": None}}
    (err,) = r.errors
    assert err.extensions["code"] == "FORBIDDEN" and err.extensions["reason"] == "internal"
    assert err.extensions["count"] == 2
    assert err.extensions["paths"] == [["me", "a"], ["me", "b"]]


def test_a_denied_non_null_field_raises_so_null_propagates(gg: GraphQLGuard) -> None:
    r = run(gg, "{ me { name nick } }")
    assert r.data == {"me": None}  # Person.nick is String!: its parent becomes null
    assert [e.extensions["code"] for e in r.errors] == ["FORBIDDEN"]
    assert r.errors[0].path == ["me", "nick"]


def test_masked_and_released_personal_values_are_counted(gg: GraphQLGuard,
                                                         sink: MemorySink) -> None:
    r = run(gg, "{ me { email phone alias: phone } }")
    assert r.data == {"me": {"email": "a***@example.org", "phone": "+44 1", "alias": "+44 1"}}
    exposure = sink.records[-1].exposure
    assert exposure["masked"] == {"Person.email": 1}
    assert exposure["released"] == {"Person.phone": 2}


def test_refusing_raises_its_error() -> None:
    error = GraphQLError("no plan", extensions={"code": "POLICY_UNDEFINED"})
    with pytest.raises(GraphQLError, match="no plan"):
        F.refusing(error)(None, None)


def test_hiding_drops_hidden_coordinates_from_type_fields() -> None:
    class Type:
        name = "Person"

    resolve = F.hiding(lambda root, info: [("name", 1), ("notes", 2)],
                       frozenset({"Person.notes"}))
    assert resolve(Type(), None) == [("name", 1)]
