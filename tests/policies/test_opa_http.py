"""The OPA HTTP engine against the fixture server: failures, auth, pushes."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
import requests

from fieldguard.errors import ConfigurationError, EngineUnavailable, PolicyError
from fieldguard.policies.decision import Outcome
from fieldguard.policies.engine import engine_from_url
from fieldguard.policies.opa_http import OpaHttpEngine, parse_engine_url
from fieldguard.policies.source import PolicySet
from tests.support.opa_server import OpaFixtureServer

POLICY = "package app\n\nversion := 1\n\nechoed := input\n\nlimit := data.policy.limits.max\n"
DATA = {"policy": {"limits": {"max": 5}}}


def ps(*modules: tuple[str, str], data: dict[str, Any] | None = None) -> PolicySet:
    return PolicySet.from_sources(modules or [("rego/app.rego", POLICY)], DATA if data is None
                                  else data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def engine(fresh_opa: OpaFixtureServer) -> Any:
    e = OpaHttpEngine(fresh_opa.engine_url, ps())
    yield e
    e.close()


# -- configuration ------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8181",  # missing opa+ scheme
        "opa+ftp://127.0.0.1:8181",
        "opa+http://",  # no host
        "opa+http://:8181",
        "opa+http://127.0.0.1:99999",  # port out of range
        "opa+http://127.0.0.1:http",  # not a number
        "opa+http://127.0.0.1:0",
        "opa+http://127.0.0.1:8181/v1/data",  # a path
        "opa+http://127.0.0.1:8181?x=1",
        "opa+http://user:pw@127.0.0.1:8181",  # credentials belong in token=
    ],
)
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        OpaHttpEngine(url, health_check=False)


def test_url_parts() -> None:
    assert parse_engine_url("opa+https://opa:8443/") == (True, "opa", 8443)
    assert parse_engine_url("opa+http://[::1]:8181") == (False, "::1", 8181)
    assert parse_engine_url("opa+http://opa") == (False, "opa", 8181)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": "fast"}, "timeout"),
        ({"admin_timeout": 0}, "admin_timeout"),
        ({"token": ""}, "token"),
        ({"ca_cert": "/etc/ssl/ca.pem"}, r"opa\+https"),
        ({"verify": False}, r"opa\+https"),
    ],
)
def test_bad_options_are_configuration_errors(options: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        OpaHttpEngine("opa+http://127.0.0.1:8181", health_check=False, **options)


def test_tls_files_must_exist(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        OpaHttpEngine("opa+https://opa:8443", health_check=False,
                      ca_cert=tmp_path / "missing.pem")
    with pytest.raises(ConfigurationError, match="verify=False"):
        (tmp_path / "ca.pem").write_text("x")
        OpaHttpEngine("opa+https://opa:8443", health_check=False,
                      ca_cert=tmp_path / "ca.pem", verify=False)


def test_policy_without_push_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="policy=None"):
        OpaHttpEngine("opa+http://127.0.0.1:8181", ps(), push=False, health_check=False)


def test_engine_from_url_dispatches_both_schemes(fresh_opa: OpaFixtureServer) -> None:
    e = engine_from_url(fresh_opa.engine_url, ps(), timeout=1.0)
    assert isinstance(e, OpaHttpEngine) and e.timeout == 1.0
    e.close()
    with pytest.raises(ConfigurationError):
        engine_from_url("opa+https://", None)


# -- health at construction ------------------------------------------------------


def test_unreachable_opa_at_startup_says_what_to_change() -> None:
    port = free_port()
    with pytest.raises(ConfigurationError) as caught:
        OpaHttpEngine(f"opa+http://127.0.0.1:{port}")
    text = str(caught.value)
    assert f"127.0.0.1:{port}" in text and "health_check=False" in text
    assert "connection refused" in text


def test_unhealthy_opa_at_startup(fresh_opa: OpaFixtureServer) -> None:
    fresh_opa.fail_health = True
    with pytest.raises(ConfigurationError, match="not healthy"):
        OpaHttpEngine(fresh_opa.engine_url)


def test_health_at_runtime_raises_engine_unavailable(engine: OpaHttpEngine,
                                                     fresh_opa: OpaFixtureServer) -> None:
    engine.health()
    fresh_opa.fail_health = True
    with pytest.raises(EngineUnavailable, match="not healthy"):
        engine.health()


# -- failures are unavailable, never raised, never retried ---------------------


def test_timeout_is_unavailable(fresh_opa: OpaFixtureServer) -> None:
    e = OpaHttpEngine(fresh_opa.engine_url, ps(), timeout=0.05)
    fresh_opa.delay = 2.0
    d = e.evaluate("app.version", {})
    assert d.outcome is Outcome.UNAVAILABLE
    assert "no answer" in (d.error or "") and "50 ms" in (d.error or "")
    assert fresh_opa.count("POST", "/v1/data/app/version") == 1  # no retry
    e.close()


async def test_async_timeout_is_unavailable(fresh_opa: OpaFixtureServer) -> None:
    e = OpaHttpEngine(fresh_opa.engine_url, ps(), timeout=0.05)
    fresh_opa.delay = 2.0
    d = await e.aevaluate("app.version", {})
    assert d.outcome is Outcome.UNAVAILABLE and "no answer" in (d.error or "")
    assert fresh_opa.count("POST", "/v1/data/app/version") == 1
    await e.aclose()


async def test_connection_refused_is_unavailable() -> None:
    e = OpaHttpEngine(f"opa+http://127.0.0.1:{free_port()}", health_check=False)
    for d in (e.evaluate("app.version", {}), await e.aevaluate("app.version", {})):
        assert d.outcome is Outcome.UNAVAILABLE
        assert "cannot connect" in (d.error or "") and "connection refused" in (d.error or "")
    await e.aclose()


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
async def test_http_errors_are_unavailable_and_not_retried(
    engine: OpaHttpEngine, fresh_opa: OpaFixtureServer, status: int
) -> None:
    fresh_opa.fail_status = status
    d = engine.evaluate("app.version", {})
    a = await engine.aevaluate("app.version", {})
    for x in (d, a):
        assert x.outcome is Outcome.UNAVAILABLE
        assert f"HTTP {status}" in (x.error or "")
        assert "fixture told to fail" in (x.error or "")  # OPA's own message is kept
    assert fresh_opa.count("POST", "/v1/data/app/version") == 2  # one each, no retries


def test_evaluation_error_keeps_opas_details(fresh_opa: OpaFixtureServer) -> None:
    e = OpaHttpEngine(fresh_opa.engine_url, ps(("rego/c.rego", "package c\nx := 1 / input.n\n")))
    d = e.evaluate("c.x", {"n": 0})
    assert d.outcome is Outcome.UNAVAILABLE
    assert "HTTP 500" in (d.error or "") and "rego/c.rego" in (d.error or "")
    assert "divide by zero" in (d.error or "")
    e.close()


def test_invalid_path_is_refused_without_a_request(engine: OpaHttpEngine,
                                                   fresh_opa: OpaFixtureServer) -> None:
    before = fresh_opa.count("POST")
    d = engine.evaluate("app/../../v1/policies", {})
    assert d.outcome is Outcome.UNAVAILABLE and "invalid decision path" in (d.error or "")
    assert fresh_opa.count("POST") == before


# -- connection reuse, decision ids, provenance ----------------------------------


async def test_one_connection_is_reused(fresh_opa: OpaFixtureServer) -> None:
    e = OpaHttpEngine(fresh_opa.engine_url, ps())
    for i in range(20):
        assert e.evaluate("app.echoed", {"i": i}).result == {"i": i}
    assert fresh_opa.connections == 1  # health check, push and 20 decisions
    for i in range(20):
        assert (await e.aevaluate("app.echoed", {"i": i})).result == {"i": i}
    assert fresh_opa.connections == 2  # plus one for the async pool
    await e.aclose()


def test_opa_decision_id_is_used_when_caller_gives_none(engine: OpaHttpEngine,
                                                        fresh_opa: OpaFixtureServer) -> None:
    fresh_opa.decision_ids = True
    d = engine.evaluate("app.version", {})
    assert d.decision_id and d.decision_id != "mine"
    assert engine.evaluate("app.version", {}, decision_id="mine").decision_id == "mine"


def test_bundle_revision_from_provenance_without_push(fresh_opa: OpaFixtureServer) -> None:
    fresh_opa.put_policy("bundle/app.rego", POLICY)
    fresh_opa.bundle_revision = "v42"
    e = OpaHttpEngine(fresh_opa.engine_url, push=False)
    assert e.revision == ""
    d = e.evaluate("app.version", {})
    assert (d.result, d.revision, e.revision) == (1, "v42", "v42")
    with pytest.raises(ConfigurationError, match="push=False"):
        e.load(ps())
    e.close()


# -- bearer token -----------------------------------------------------------------


@pytest.fixture
def token_opa() -> Any:
    with OpaFixtureServer(token="s3cret") as server:
        yield server


async def test_bearer_token(token_opa: OpaFixtureServer) -> None:
    with pytest.raises(ConfigurationError, match="set token="):
        OpaHttpEngine(token_opa.engine_url)
    with pytest.raises(ConfigurationError, match="not accepted"):
        OpaHttpEngine(token_opa.engine_url, token="wrong")
    e = OpaHttpEngine(token_opa.engine_url, ps(), token="s3cret")
    assert e.evaluate("app.version", {}).result == 1
    assert (await e.aevaluate("app.version", {})).result == 1
    await e.aclose()
    anonymous = OpaHttpEngine(token_opa.engine_url, health_check=False)
    d = anonymous.evaluate("app.version", {})
    assert d.outcome is Outcome.UNAVAILABLE and "HTTP 401" in (d.error or "")
    anonymous.close()


# -- pushing policies ---------------------------------------------------------------


def server_policies(server: OpaFixtureServer) -> dict[str, str]:
    body = requests.get(server.url + "/v1/policies", timeout=5).json()
    return {p["id"]: p["raw"] for p in body["result"]}


def test_push_uses_prefixed_ids_and_data(engine: OpaHttpEngine,
                                         fresh_opa: OpaFixtureServer) -> None:
    assert server_policies(fresh_opa) == {"fieldguard/rego/app.rego": POLICY}
    assert engine.evaluate("app.limit", {}).result == 5
    assert fresh_opa.count("PUT", "/v1/data/policy") == 1


def test_unchanged_modules_are_not_pushed_again(engine: OpaHttpEngine,
                                                fresh_opa: OpaFixtureServer) -> None:
    puts = fresh_opa.count("PUT", "/v1/policies/")
    engine.load(ps())
    assert fresh_opa.count("PUT", "/v1/policies/") == puts


def test_modules_that_depend_on_later_modules_are_pushed(fresh_opa: OpaFixtureServer) -> None:
    # "a.rego" sorts first but calls a function defined in "z.rego": OPA
    # rejects it until z.rego exists, so the push goes round again.
    a = "package a\n\nx := data.z.double(input.n)\n"
    z = "package z\n\ndouble(n) := n * 2\n"
    e = OpaHttpEngine(fresh_opa.engine_url, ps(("rego/a.rego", a), ("rego/z.rego", z)))
    assert e.evaluate("a.x", {"n": 4}).result == 8
    e.close()


def test_removed_modules_and_data_are_deleted(fresh_opa: OpaFixtureServer) -> None:
    other = ("rego/other.rego", "package other\n\ny := 2\n")
    e = OpaHttpEngine(fresh_opa.engine_url,
                      ps(("rego/app.rego", POLICY), other, data={**DATA, "extra": {"k": 1}}))
    fresh_opa.put_policy("someone-else.rego", "package else\n\nz := 3\n")
    assert e.evaluate("other.y", {}).result == 2
    e.load(ps())
    assert set(server_policies(fresh_opa)) == {"fieldguard/rego/app.rego", "someone-else.rego"}
    assert e.evaluate("other.y", {}).outcome is Outcome.UNDEFINED
    assert requests.get(fresh_opa.url + "/v1/data/extra", timeout=5).json() == {}
    e.close()


def test_compile_error_is_located_and_everything_is_restored(
    fresh_opa: OpaFixtureServer,
) -> None:
    lib = ("rego/lib.rego", "package lib\n\nname := \"v1\"\n")
    e = OpaHttpEngine(fresh_opa.engine_url, ps(("rego/app.rego", POLICY), lib))
    before, revision = server_policies(fresh_opa), e.revision
    changed_lib = ("rego/lib.rego", "package lib\n\nname := \"v2\"\n")
    broken_app = ("rego/app.rego", "package app\n\nversion := 2\n\nbad if {\n  nope\n}\n")
    with pytest.raises(PolicyError) as caught:
        e.load(ps(broken_app, changed_lib, ("rego/new.rego", "package new\n\nn := 1\n"),
                  data={"policy": {"limits": {"max": 9}}}))
    (problem,) = caught.value.problems
    assert (problem.file, problem.line) == ("rego/app.rego", 6)
    assert "unsafe" in problem.message
    assert server_policies(fresh_opa) == before  # lib.rego restored, new.rego deleted
    assert e.revision == revision
    assert e.evaluate("lib.name", {}).result == "v1"
    assert e.evaluate("app.limit", {}).result == 5


def test_parse_error_has_line_and_column(engine: OpaHttpEngine) -> None:
    broken = ("rego/app.rego", "package app\n\nallow if {\n  input.x ==\n}\n")
    with pytest.raises(PolicyError) as caught:
        engine.load(ps(broken))
    assert str(caught.value.problems[0]).startswith("rego/app.rego:5:1: rego_parse_error")


def test_rejected_data_restores_modules(fresh_opa: OpaFixtureServer) -> None:
    e = OpaHttpEngine(fresh_opa.engine_url, ps())
    before = server_policies(fresh_opa)
    # data.app.version is a rule: OPA refuses data at the same path.
    v2 = ("rego/app.rego", POLICY.replace("version := 1", "version := 2"))
    with pytest.raises(PolicyError, match=r"data\.app"):
        e.load(ps(v2, data={**DATA, "app": {"version": 3}}))
    assert server_policies(fresh_opa) == before
    assert e.evaluate("app.version", {}).result == 1
    e.close()


def test_unreachable_opa_on_load_is_engine_unavailable(fresh_opa: OpaFixtureServer) -> None:
    e = OpaHttpEngine(f"opa+http://127.0.0.1:{free_port()}", health_check=False)
    with pytest.raises(EngineUnavailable, match="cannot connect"):
        e.load(ps())
    assert e.revision == ""
    e.close()


def test_compile_endpoint_of_the_fixture(fresh_opa: OpaFixtureServer) -> None:
    fresh_opa.put_policy("f.rego", "package f\n\ninclude if input.posts.owner == input.user\n")
    resp = requests.post(
        fresh_opa.url + "/v1/compile/f/include",
        data=json.dumps({"input": {"user": "u1"}, "unknowns": ["input.posts"]}),
        headers={"Accept": "application/vnd.opa.sql.postgresql+json"}, timeout=5,
    )
    assert resp.status_code == 200
    assert resp.json()["result"]["query"] == "WHERE posts.owner = E'u1'"
    assert requests.post(fresh_opa.url + "/v1/compile", json={}, timeout=5).status_code == 501
