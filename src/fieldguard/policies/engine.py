"""The engine protocol and the URL registry that picks an engine.

Every engine answers :meth:`Engine.evaluate` with a :class:`Decision` and
never raises for a failed evaluation: errors and timeouts become an
*unavailable* decision, so one code path fails closed for all of them.
Loading a policy that does not compile raises :class:`PolicyError` and keeps
the last good policy serving.

Engines are chosen by URL:

=======================  ==========================================
``regorus://``           embedded Rust Rego interpreter (default)
``opa+http://host:port`` a real OPA server (``opa+https://`` for TLS)
``opa-embedded://``      OPA's own Go engine, in process
=======================  ==========================================

Example:
    >>> from fieldguard.policies.source import PolicySet
    >>> ps = PolicySet.from_sources([("p.rego", "package p\\nx := input.n + 1\\n")])
    >>> engine = engine_from_url("regorus://", ps)
    >>> engine.evaluate("p.x", {"n": 1}).result
    2
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from fieldguard.errors import ConfigurationError
from fieldguard.policies.decision import Decision
from fieldguard.policies.source import PolicySet

DEFAULT_ENGINE_URL = "regorus://"


@runtime_checkable
class Engine(Protocol):
    """What every decision engine provides (sync and async)."""

    name: str

    @property
    def revision(self) -> str:
        """The revision of the policy now serving ('' before any load)."""
        ...

    def load(self, policy: PolicySet) -> None:
        """Compile ``policy`` and swap it in atomically.

        Raises:
            PolicyError: the policy does not compile; the previous policy
                keeps serving.
        """
        ...

    def evaluate(
        self, path: str, input: Mapping[str, Any], *, decision_id: str | None = None
    ) -> Decision:
        """Evaluate ``data.<path>`` for ``input``; never raises for engine failures."""
        ...

    async def aevaluate(
        self, path: str, input: Mapping[str, Any], *, decision_id: str | None = None
    ) -> Decision:
        """Async :meth:`evaluate`."""
        ...

    def health(self) -> None:
        """Raise :class:`EngineUnavailable` unless the engine can decide."""
        ...

    def close(self) -> None:
        """Release connections and native handles."""
        ...


EngineFactory = Callable[[str, "PolicySet | None", Mapping[str, Any]], Engine]


def _regorus(url: str, policy: PolicySet | None, options: Mapping[str, Any]) -> Engine:
    from fieldguard.policies.regorus_engine import RegorusEngine

    return RegorusEngine(policy, **options)


def _opa_http(url: str, policy: PolicySet | None, options: Mapping[str, Any]) -> Engine:
    from fieldguard.policies.opa_http import OpaHttpEngine

    return OpaHttpEngine(url, policy, **options)


def _opa_embedded(url: str, policy: PolicySet | None, options: Mapping[str, Any]) -> Engine:
    from fieldguard.policies.opa_embedded import OpaEmbeddedEngine

    return OpaEmbeddedEngine(policy, **options)


_SCHEMES: dict[str, EngineFactory] = {
    "regorus": _regorus,
    "opa+http": _opa_http,
    "opa+https": _opa_http,
    "opa-embedded": _opa_embedded,
}


def engine_from_url(
    url: str = DEFAULT_ENGINE_URL, policy: PolicySet | None = None, **options: Any
) -> Engine:
    """Build the engine named by ``url`` and load ``policy`` into it.

    Args:
        url: ``regorus://``, ``opa+http://host:port``, ``opa+https://…``
            or ``opa-embedded://``.
        policy: the policy to load (for OPA servers: to push; pass None to
            use what the server already serves, e.g. from bundles).
        **options: engine-specific options (``timeout``, ``token``…).

    Raises:
        ConfigurationError: unknown scheme or bad options.
        PolicyError: the policy does not compile.
    """
    scheme = urlsplit(url).scheme if "://" in url else url
    factory = _SCHEMES.get(scheme)
    if factory is None:
        known = ", ".join(f"{s}://" for s in sorted(_SCHEMES))
        raise ConfigurationError(f"unknown engine URL {url!r}; use one of {known}")
    return factory(url, policy, options)
