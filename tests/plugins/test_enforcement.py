"""Enforcement through real schemas: strawberry and graphql-core, same cases.

``User.moderationNotes`` is internal: the plan denies it to an ordinary
member. Every path that reaches it must be denied the same way.
"""

from __future__ import annotations

import pytest

from tests.plugins.conftest import ANON, OTHER, SUPPORT, USER, Run, caller

DENIED_PATHS = {
    "direct": ("{ user(id: \"u5\") { moderationNotes } }", ["user", "moderationNotes"]),
    "alias": ("{ user(id: \"u5\") { notes: moderationNotes } }", ["user", "notes"]),
    "fragment": ("{ user(id: \"u5\") { ...F } } fragment F on User { moderationNotes }",
                 ["user", "moderationNotes"]),
    "interface": ("{ node(id: \"u5\") { ... on User { moderationNotes } } }",
                  ["node", "moderationNotes"]),
    "union": ("{ search(text: \"user5\", first: 1) { ... on User { moderationNotes } } }",
              ["search", 0, "moderationNotes"]),
    "nested list": ("{ users(first: 2) { posts { author { moderationNotes } } } }",
                    ["users", 0, "posts", 0, "author", "moderationNotes"]),
    "mutation payload": ("mutation { updateProfile(displayName: \"Zed\") "
                         "{ user { moderationNotes } } }",
                         ["updateProfile", "user", "moderationNotes"]),
}


@pytest.mark.parametrize("name", sorted(DENIED_PATHS))
def test_denied_field_is_denied_by_every_path(run: Run, name: str) -> None:
    query, path = DENIED_PATHS[name]
    result = run(query, caller(USER))
    assert path in result.paths("FORBIDDEN"), (result.data, result.errors)
    assert "note 5" not in repr(result.data) and "note 1" not in repr(result.data)


def test_denied_with_variables_and_include(run: Run) -> None:
    query = ("query Q($id: ID!, $with: Boolean!) "
             "{ user(id: $id) { handle moderationNotes @include(if: $with) } }")
    shown = run(query, caller(USER), {"id": "u5", "with": True})
    assert ["user", "moderationNotes"] in shown.paths()
    assert shown.data == {"user": {"handle": "user5", "moderationNotes": None}}
    skipped = run(query, caller(USER), {"id": "u5", "with": False})
    assert skipped.errors == []
    assert skipped.data == {"user": {"handle": "user5"}}


def test_anonymous_sees_public_fields_only(run: Run) -> None:
    result = run("{ users(first: 3) { id handle email phone } }", caller(ANON))
    assert all(u["email"] is None and u["phone"] is None for u in result.data["users"])
    assert all(u["handle"] for u in result.data["users"])
    assert set(result.codes()) == {"FORBIDDEN"}


def test_support_sees_contact_data_masked(run: Run) -> None:
    result = run("{ user(id: \"u5\") { email phone moderationNotes } }", caller(SUPPORT))
    assert result.errors == []
    assert result.data["user"]["email"] == "u***@example.org"
    assert result.data["user"]["phone"] == "•••0005"
    assert result.data["user"]["moderationNotes"] == "note 5"


def test_privacy_settings_of_each_data_subject(run: Run) -> None:
    # u1: email 'authenticated'; u2: email 'everyone'... see demo PRIVACY_PROFILES:
    # n % 3 == 0 → email nobody, == 1 → authenticated, == 2 → everyone.
    result = run("{ users(first: 6) { id email } }", caller(OTHER))
    emails = {u["id"]: u["email"] for u in result.data["users"]}
    assert emails["u1"] == "user1@example.org"      # authenticated
    assert emails["u2"] == "user2@example.org"      # everyone
    assert emails["u6"] is None                      # nobody
    assert "u3" not in emails                         # private profile: dropped
    assert ["users", 4, "email"] in result.paths()  # u6 is the 5th visible user


def test_self_sees_own_private_fields(run: Run) -> None:
    result = run("{ me { id phone email } }", caller(Subject_u6()))
    assert result.data == {"me": {"id": "u6", "phone": "+44 20 7946 0006",
                                  "email": "user6@example.org"}}


def Subject_u6():
    from fieldguard.context import Subject

    return Subject("u6", account_age_days=400)


def test_invisible_objects_are_dropped_from_lists_and_null_alone(run: Run) -> None:
    listed = run("{ users(first: 10) { id } }", caller(USER))
    ids = [u["id"] for u in listed.data["users"]]
    assert "u3" not in ids and "u7" not in ids   # private, suspended
    assert "u1" in ids
    alone = run("{ user(id: \"u3\") { id } }", caller(USER))
    assert alone.data == {"user": None}
    owner = run("{ user(id: \"u3\") { id } }", caller(Subject_u3()))
    assert owner.data == {"user": {"id": "u3"}}


def Subject_u3():
    from fieldguard.context import Subject

    return Subject("u3", account_age_days=400)


def test_static_caps_refuse_before_execution(run: Run) -> None:
    result = run("{ users(first: 500) { id } }", caller(USER))
    assert result.data is None
    assert result.codes() == ["BAD_REQUEST"]
    assert result.errors[0].extensions["reasons"][0]["code"] == "query.page_size"


def test_malformed_queries_get_errors_not_data(run: Run) -> None:
    for query in ["{ users(first: 2) { id ", "{ nosuchfield }", "query { users { emial } }"]:
        result = run(query, caller(USER))
        assert result.data is None
        assert result.errors


def test_unknown_operation_and_bad_variables(run: Run, request: pytest.FixtureRequest) -> None:
    q = "query A { me { id } } query B { me { handle } }"
    if "strawberry" in request.node.name:
        # strawberry raises this itself (its HTTP views answer 400) before
        # any extension hook runs; nothing executes.
        from strawberry.schema.exceptions import CannotGetOperationTypeError

        with pytest.raises(CannotGetOperationTypeError):
            run(q, caller(USER), operation_name="C")
    else:
        unknown = run(q, caller(USER), operation_name="C")
        assert unknown.data is None and unknown.codes() == ["BAD_REQUEST"]
    bad = run("query Q($n: Int!) { users(first: $n) { id } }", caller(USER), {"n": "ten"})
    assert bad.data is None and bad.errors


def test_suggestions_are_hidden(run: Run) -> None:
    result = run("{ users { emial } }", caller(ANON))
    assert result.errors
    assert "Did you mean" not in result.errors[0].message


def test_introspection_hides_denied_coordinates(run: Run) -> None:
    q = '{ __type(name: "User") { fields { name } } }'
    anon = {f["name"] for f in run(q, caller(ANON)).data["__type"]["fields"]}
    support = {f["name"] for f in run(q, caller(SUPPORT)).data["__type"]["fields"]}
    assert "moderationNotes" not in anon and "email" not in anon
    assert "handle" in anon
    assert "moderationNotes" in support


def test_purpose_from_an_operation_directive(run: Run) -> None:
    q = 'query Ticket @purpose(name: "support") { user(id: "u5") { email } }'
    result = run(q, caller(SUPPORT, purpose=None))
    assert result.data == {"user": {"email": "u***@example.org"}}
    member = run(q, caller(USER))   # a member may not claim the support purpose
    assert member.data is None and member.codes() == ["FORBIDDEN"]
    clash = run(q, caller(SUPPORT, purpose="analytics"))
    assert clash.data is None and clash.codes() == ["BAD_REQUEST"]
