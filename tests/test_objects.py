"""Object shapes (fieldguard.objects) and the verdict cache a Guard shares."""

from __future__ import annotations

import enum
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

import pytest

from fieldguard.context import Caller, Client, Subject
from fieldguard.demo.data import Store
from fieldguard.errors import ConfigurationError, EngineError
from fieldguard.guard import Guard, Operation, Session
from fieldguard.objects import (
    DEFAULT_VERDICT_CACHE,
    TypeSpec,
    VerdictCache,
    engine_item,
    freeze,
    jsonable,
    nondeterministic_calls,
    read_attr,
    read_shapes,
    shape_reader,
)
from fieldguard.policies.contract import HIDDEN, ObjectVerdict
from fieldguard.policies.source import PolicySet
from tests.support.opa_server import OpaFixtureServer

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


def test_one_object_gets_the_shape_it_has_in_a_batch() -> None:
    # verdict_of() decides lone objects; they must hit what batches decided
    users: list[Any] = Store.generate(users=30, posts_per_user=0).page(first=30)
    users += [Post("u1", {"a": "x", "b": None}), Post("u1", ["x", None]), Post("u1", 3)]
    spec = TypeSpec("User", subject="id", owner="id", attrs=("privacy", "visibility"))
    batch = read_shapes(spec, users[:30], "u7")
    shape_at = {pos: shape for shape, pos in batch.first.items()}
    for i, user in enumerate(users[:30]):
        assert list(read_shapes(spec, [user], "u7").first) == [shape_at[batch.position[i]]]
    for post in users[30:]:
        alone = read_shapes(POST, [post], "u1")
        assert set(alone.first) <= set(read_shapes(POST, [post, post], "u1").first)


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


# -- the verdict cache -----------------------------------------------------------

POLICY = '''package fieldguard
plan := {"allow": true, "outcome": "allow", "status": 200,
         "fields": {f.coordinate: {"effect": "check"} | some f in input.fields}}
objects := {"objects": [verdict(o) | some o in input.objects]}
verdict(o) := {"visible": o.attrs.visibility != "private",
               "fields": {c: effect(o, c) | some c in input.coordinates}}
effect(o, c) := {"effect": "allow", "reason": "own"} if {
	o.relation == "self"
} else := {"effect": "allow", "reason": "staff"} if {
	input.subject.id == "admin"
} else := {"effect": "allow", "reason": "support"} if {
	input.purpose == "support"
} else := {"effect": "mask", "mask": "redact", "reason": VERSION}
VERSION := "v1"
'''
TYPES = {"policy": {"classification": {"types": {
    "User": {"subject": "id", "owner": "id", "attrs": ["visibility"]}}}}}
USERS = [{"id": f"u{n}", "visibility": ("public", "members", "private")[n % 3]}
         for n in range(30)]  # 3 visibilities x self/other: 4 shapes for u1


def policy(text: str = POLICY) -> PolicySet:
    return PolicySet.from_sources([("p.rego", text)], TYPES)


def request(guard: Guard, who: str = "u1", purpose: str | None = None,
            fields: tuple[str, ...] = ("User.email",), users: list[Any] = USERS,
            ) -> tuple[Session, list[ObjectVerdict]]:
    session = guard.session(Caller(Subject(who), Client("203.0.113.5"), purpose=purpose))
    session.decide(Operation("graphql", "query", "Users", fields=dict.fromkeys(fields, 1),
                             complexity={"depth": 2}))
    return session, session.verdicts("User", users)


def test_a_cached_shape_skips_the_engine() -> None:
    guard = Guard(policy=policy(), verdict_cache=100)
    assert guard.verdict_cache_active()
    first, verdicts = request(guard)
    assert (first.engine_calls, first.objects_evaluated, first.objects_cached) == (2, 4, 0)
    second, again = request(guard)
    assert (second.engine_calls, second.objects_evaluated, second.objects_cached) == (1, 0, 4)
    assert again == verdicts
    assert [v.effect("User.email").reason for v in verdicts[:3]] == ["v1", "own", "v1"]
    assert second.verdict_of("User", USERS[1])[0].effect("User.email").reason == "own"
    metrics = second.finish().metrics
    assert (metrics["engine_calls"], metrics["objects_cached"]) == (1, 4)
    # a batch with cached and new shapes asks the engine for the new ones only
    third, _ = request(guard, users=[*USERS, {"id": "u99", "visibility": "secret"}])
    assert (third.engine_calls, third.objects_evaluated, third.objects_cached) == (2, 1, 4)


def test_on_by_default_for_embedded_engines_and_can_be_turned_off() -> None:
    guard = Guard(policy=policy())
    assert guard.verdict_cache is not None and guard.verdict_cache_active()
    assert guard.verdict_cache.maxsize == DEFAULT_VERDICT_CACHE
    request(guard)
    assert request(guard)[0].engine_calls == 1
    off = Guard(policy=policy(), verdict_cache=0)
    assert off.verdict_cache is None and not off.verdict_cache_active()
    request(off)
    session, _ = request(off)
    assert (session.engine_calls, session.objects_cached) == (2, 0)
    with pytest.raises(ConfigurationError, match="verdict_cache"):
        Guard(policy=policy(), verdict_cache=-1)


def test_other_callers_purposes_and_coordinates_miss() -> None:
    guard = Guard(policy=policy(), verdict_cache=100)
    _, mine = request(guard)
    for kw, reason in [({"who": "admin"}, "staff"), ({"purpose": "support"}, "support"),
                       ({"fields": ("User.email", "User.phone")}, "v1")]:
        session, verdicts = request(guard, **kw)  # type: ignore[arg-type]
        assert (session.engine_calls, session.objects_cached) == (2, 0), kw
        assert verdicts[0].effect("User.email").reason == reason
        again = request(guard, **kw)[0]  # type: ignore[arg-type]
        assert again.objects_cached == session.objects_evaluated > 0
    assert request(guard)[1] == mine


def test_a_reload_changes_the_revision_and_misses() -> None:
    guard = Guard(policy=policy(), verdict_cache=100)
    request(guard)
    assert request(guard)[0].objects_cached == 4
    before = guard.engine.revision
    guard.engine.load(policy(POLICY.replace('"v1"', '"v2"')))
    assert guard.engine.revision != before
    session, verdicts = request(guard)
    assert (session.engine_calls, session.objects_cached) == (2, 0)
    assert verdicts[0].effect("User.email").reason == "v2"
    assert request(guard)[0].objects_cached == 4


def test_a_reload_during_a_request_neither_reads_nor_fills_the_cache() -> None:
    guard = Guard(policy=policy(), verdict_cache=100)
    session = guard.session(Caller(Subject("u1"), Client("203.0.113.5")))
    session.decide(Operation("graphql", "query", None, fields={"User.email": 1}))
    guard.engine.load(policy(POLICY.replace('"v1"', '"v2"')))
    session.verdicts("User", USERS)
    assert (session.engine_calls, session.objects_cached) == (2, 0)
    assert guard.verdict_cache is not None and len(guard.verdict_cache) == 0


def test_a_failed_decision_is_not_cached() -> None:
    broken = POLICY.replace("[verdict(o) | some o in input.objects]", "[]")
    guard = Guard(policy=policy(broken), verdict_cache=100)
    with pytest.raises(EngineError):
        request(guard)
    assert guard.verdict_cache is not None and len(guard.verdict_cache) == 0


def test_non_deterministic_builtins_turn_the_cache_off(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    clock = POLICY.replace('VERSION := "v1"', "VERSION := sprintf(\"%d\", [time.now_ns()])")
    with caplog.at_level(logging.WARNING, logger="fieldguard.guard"):
        guard = Guard(policy=policy(clock), verdict_cache=100)
    assert "verdict cache off" in caplog.text and "p.rego: time.now_ns" in caplog.text
    assert not guard.verdict_cache_active()
    request(guard)
    session, _ = request(guard)
    assert (session.engine_calls, session.objects_cached) == (2, 0)
    # a hot reload to a deterministic policy turns it on, and back off
    guard.engine.load(policy())
    assert guard.verdict_cache_active()
    request(guard)
    assert request(guard)[0].objects_cached == 4
    guard.engine.load(policy(clock.replace("time.now_ns()", "rand.intn(\"x\", 9)")))
    assert not guard.verdict_cache_active()
    assert request(guard)[0].objects_cached == 0


@pytest.mark.parametrize("builtin", ["time.now_ns()", 'http.send({"method": "get"})',
                                     'rand.intn("k", 3)', 'uuid.rfc4122("k")',
                                     "opa.runtime()", 'net.lookup_ip_addr("x")'])
def test_each_non_deterministic_builtin_is_found(builtin: str) -> None:
    ps = policy(POLICY + f"\nimpure := {builtin}\n")
    assert nondeterministic_calls(ps) == [f"p.rego: {builtin.split('(')[0]}"]
    assert nondeterministic_calls(policy()) == []
    assert nondeterministic_calls(policy(POLICY + "\nx := my.time.now_ns_ish\n")) == []


def test_opa_http_engines_do_not_cache_unless_forced(caplog: pytest.LogCaptureFixture) -> None:
    with OpaFixtureServer() as opa:
        with caplog.at_level(logging.WARNING, logger="fieldguard.guard"):
            guard = Guard(opa.engine_url, policy=policy(), verdict_cache=100)
        assert guard.verdict_cache is None and not guard.verdict_cache_active()
        assert "engine opa-http" in caplog.text and "verdict_cache_force" in caplog.text
        request(guard)
        assert request(guard)[0].engine_calls == 2
        guard.engine.close()
        default = Guard(opa.engine_url, policy=policy())  # off, without a warning
        assert default.verdict_cache is None
        default.engine.close()

        forced = Guard(opa.engine_url, policy=policy(), verdict_cache=100,
                       verdict_cache_force=True)
        assert forced.verdict_cache_active()
        _, verdicts = request(forced)
        session, again = request(forced)
        assert (session.engine_calls, session.objects_cached) == (1, 4)
        assert again == verdicts
        forced.engine.close()


def test_threads_deciding_different_subjects_get_their_own_verdicts() -> None:
    guard = Guard(policy=policy(), verdict_cache=1000)
    callers = [("admin", None, "staff"), ("u5", "support", "support"), ("u7", None, "v1"),
               ("u8", "support", "support")]
    failures: list[str] = []
    barrier = threading.Barrier(len(callers) * 2)

    def work(who: str, purpose: str | None, reason: str) -> None:
        barrier.wait()
        for _ in range(25):
            _, verdicts = request(guard, who, purpose)
            for user, verdict in zip(USERS, verdicts, strict=True):
                want = "own" if user["id"] == who else reason
                if verdict.effect("User.email").reason != want or \
                        verdict.visible != (user["visibility"] != "private"):
                    failures.append(f"{who}: {user} got {verdict}")

    threads = [threading.Thread(target=work, args=c) for c in callers * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert guard.verdict_cache is not None and guard.verdict_cache.hits > 0


def test_the_cache_holds_at_most_its_size() -> None:
    guard = Guard(policy=policy(), verdict_cache=3)
    many = [{"id": f"u{n}", "visibility": f"v{n}"} for n in range(10)]
    session, _ = request(guard, users=many)
    assert session.objects_evaluated == 10
    assert guard.verdict_cache is not None and len(guard.verdict_cache) == 3
    # the three most recent shapes are the ones kept
    session, _ = request(guard, users=many[7:])
    assert (session.engine_calls, session.objects_cached) == (1, 3)
    session, _ = request(guard, users=many[:1])
    assert (session.engine_calls, session.objects_cached) == (2, 0)
    assert len(guard.verdict_cache) == 3


def test_verdict_cache_is_lru_and_thread_safe() -> None:
    cache = VerdictCache(2)
    prefix = ("r1", "{}", ("User.email",))
    a, b, c = (("User", "other", x) for x in "abc")
    cache.put_many(prefix, {a: HIDDEN, b: HIDDEN})
    assert cache.get_many(prefix, [a]) == {a: HIDDEN}   # a is now the most recent
    cache.put_many(prefix, {c: HIDDEN})                  # so b goes
    assert set(cache.get_many(prefix, [a, b, c])) == {a, c}
    assert cache.get_many(("r2", "{}", ("User.email",)), [a]) == {}
    with pytest.raises(ValueError):
        VerdictCache(0)

    big = VerdictCache(50)

    def hammer(n: int) -> None:
        for i in range(500):
            shape = ("User", "other", f"{n}-{i % 80}")
            big.put_many(prefix, {shape: HIDDEN})
            big.get_many(prefix, [shape, ("User", "self", str(i))])

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(big) == 50
