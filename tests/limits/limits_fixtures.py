"""Shared values for the limits tests: the test catalogue, plan charges and a
Redis command counter (round trips are counted on the server, not guessed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fieldguard.limits import Limiter

#: ``make_limiter`` fixture type: build a limiter on the parametrized backend.
LimiterFactory = Callable[..., Limiter]

CATALOGUE: dict[str, Any] = {
    "quotas": {
        "records_day": {"measure": "records", "window_seconds": 86400},
        "subjects_day": {"measure": "subjects", "window_seconds": 86400},
        "cost_hour": {
            "measure": "cost",
            "window_seconds": 3600,
            "strategy": "sliding-window-counter",
        },
        "requests_minute": {"measure": "requests", "window_seconds": 60},
    },
    "scopes": ["subject", "app", "ip", "prefix"],
}


def charge(
    quota: str, scope: str, key: str, limit: int, catalogue: dict[str, Any] = CATALOGUE
) -> dict[str, Any]:
    """A plan charge for ``quota`` as the policy returns it."""
    spec = catalogue["quotas"][quota]
    return {
        "quota": quota,
        "scope": scope,
        "key": key,
        "limit": limit,
        "measure": spec["measure"],
        "window_seconds": spec["window_seconds"],
    }


def redis_calls(client: Any) -> dict[str, int]:
    """Commands the server executed, by name, from ``INFO commandstats``.

    Call ``CONFIG RESETSTAT`` first; ``info``/``config`` themselves are dropped.
    """
    stats = client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    return {k: v for k, v in calls.items() if k not in ("info", "config", "config|resetstat")}


def admit_worker(url: str, attempts: int, limit: int, quota: str, start: Any) -> int:
    """One concurrency worker (thread or spawned process): build a limiter
    from ``url``, wait for the start signal, try ``attempts`` admissions of
    one unit against one shared counter; return how many were admitted."""
    from fieldguard.limits import Limiter

    limiter = Limiter.from_url(url, quotas=CATALOGUE)
    charges = [charge(quota, "app", "shared", limit)]
    try:
        start.wait()
        return sum(limiter.admit(charges, 1).admitted for _ in range(attempts))
    finally:
        limiter.close()
