"""The quota catalogue: which counters exist, their windows and fail modes.

The catalogue is ``data.policy.limits`` (``policies/limits.yaml``): Rego reads
it to decide limits, Python reads it to know which counters to fetch before the
plan. Only what Python needs is validated here; everything else in the mapping
(tiers, caps…) is ignored. Errors raise :class:`ConfigurationError` at
construction, never per request.

Example:
    >>> cat = Catalogue.from_mapping({
    ...     "quotas": {"records_day": {"measure": "records", "window_seconds": 86400},
    ...                "cost_hour": {"measure": "cost", "window_seconds": 3600,
    ...                              "fail": "allow"}},
    ...     "scopes": ["subject", "app", "ip", "prefix"]})
    >>> cat.quotas["cost_hour"].fail is FailMode.ALLOW
    True
    >>> cat.quotas["records_day"].strategy is Strategy.MOVING_WINDOW
    True
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fieldguard.errors import ConfigurationError

#: Scopes a quota can be counted under, in the order ``usage`` lists them.
SCOPES: tuple[str, ...] = ("subject", "app", "ip", "prefix")

#: What a charge can count (see the policy contract, "Measures").
MEASURES: frozenset[str] = frozenset({"requests", "records", "subjects", "sensitive", "cost"})

#: Measures that count personal data released: their quotas may never fail open,
#: because an outage must not become an unmetered scraping window.
PERSONAL_DATA_MEASURES: frozenset[str] = frozenset({"records", "subjects", "sensitive"})


class FailMode(enum.Enum):
    """What a quota does when its storage is unreachable."""

    DENY = "deny"
    ALLOW = "allow"


class Strategy(enum.Enum):
    """The window algorithm of a quota (names as in :mod:`limits.strategies`).

    ``moving-window`` is exact (one timestamp per unit, at most ``limit`` kept);
    ``sliding-window-counter`` keeps two integers and weights the previous
    window, so it is O(1) for very large limits but approximate.
    """

    MOVING_WINDOW = "moving-window"
    SLIDING_WINDOW_COUNTER = "sliding-window-counter"


@dataclass(frozen=True)
class Quota:
    """One entry of ``data.policy.limits.quotas``.

    Attributes:
        name: the quota's name, e.g. ``records_day``.
        measure: one of :data:`MEASURES`.
        window_seconds: the window length (> 0).
        strategy: the window algorithm (default moving window).
        fail: fail mode when storage is down (default deny).
        scopes: the scopes this quota is read under (default all catalogue scopes).
    """

    name: str
    measure: str
    window_seconds: int
    strategy: Strategy = Strategy.MOVING_WINDOW
    fail: FailMode = FailMode.DENY
    scopes: tuple[str, ...] = SCOPES

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise ConfigurationError(
                f"quota {self.name!r}: unknown measure {self.measure!r}; "
                f"use one of {sorted(MEASURES)}"
            )
        if self.window_seconds <= 0:
            raise ConfigurationError(f"quota {self.name!r}: window_seconds must be > 0")
        if self.fail is FailMode.ALLOW and self.measure in PERSONAL_DATA_MEASURES:
            raise ConfigurationError(
                f"quota {self.name!r} counts personal data ({self.measure}) and must fail "
                "closed: 'fail: allow' is not permitted"
            )
        bad = [s for s in self.scopes if s not in SCOPES]
        if bad:
            raise ConfigurationError(f"quota {self.name!r}: unknown scopes {bad}")

    @classmethod
    def from_mapping(
        cls, name: str, spec: Mapping[str, Any], default_scopes: tuple[str, ...] = SCOPES
    ) -> Quota:
        """Parse one catalogue entry.

        Raises:
            ConfigurationError: missing or invalid fields.
        """
        if not isinstance(spec, Mapping):
            raise ConfigurationError(f"quota {name!r}: expected a mapping, got {spec!r}")
        try:
            measure = spec["measure"]
            window = spec["window_seconds"]
        except KeyError as exc:
            raise ConfigurationError(f"quota {name!r}: missing {exc.args[0]!r}") from None
        if not isinstance(window, int) or isinstance(window, bool):
            raise ConfigurationError(f"quota {name!r}: window_seconds must be an integer")
        try:
            strategy = Strategy(spec.get("strategy", Strategy.MOVING_WINDOW.value))
            fail = FailMode(spec.get("fail", FailMode.DENY.value))
        except ValueError as exc:
            raise ConfigurationError(f"quota {name!r}: {exc}") from None
        scopes = spec.get("scopes", default_scopes)
        if isinstance(scopes, str) or not isinstance(scopes, Iterable):
            raise ConfigurationError(f"quota {name!r}: scopes must be a list")
        return cls(
            name=name,
            measure=str(measure),
            window_seconds=window,
            strategy=strategy,
            fail=fail,
            scopes=tuple(str(s) for s in scopes),
        )


@dataclass(frozen=True)
class Catalogue:
    """The parsed ``data.policy.limits`` quota catalogue.

    Attributes:
        quotas: quota name → :class:`Quota`.
        scopes: the scopes usage is read under, in catalogue order.
    """

    quotas: Mapping[str, Quota]
    scopes: tuple[str, ...] = SCOPES

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        fail_modes: Mapping[str, str | FailMode] | None = None,
    ) -> Catalogue:
        """Parse ``data.policy.limits`` (only ``quotas`` and ``scopes`` are read).

        Args:
            data: the mapping loaded from ``policies/limits.yaml``.
            fail_modes: quota name → ``deny``/``allow``, overriding the
                catalogue's ``fail`` entries (deployment-side knob).

        Raises:
            ConfigurationError: not a mapping, no quotas, unknown scope or
                measure, a personal-data quota set to fail open, an override
                for an unknown quota.
        """
        if not isinstance(data, Mapping):
            raise ConfigurationError("quota catalogue must be a mapping (data.policy.limits)")
        raw_scopes = data.get("scopes", SCOPES)
        if isinstance(raw_scopes, str) or not isinstance(raw_scopes, Iterable):
            raise ConfigurationError("catalogue 'scopes' must be a list")
        scopes = tuple(str(s) for s in raw_scopes)
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown:
            raise ConfigurationError(f"catalogue: unknown scopes {unknown}; use {list(SCOPES)}")
        raw_quotas = data.get("quotas")
        if not isinstance(raw_quotas, Mapping) or not raw_quotas:
            raise ConfigurationError("catalogue 'quotas' must be a non-empty mapping")
        overrides = dict(fail_modes or {})
        stray = sorted(set(overrides) - set(raw_quotas))
        if stray:
            raise ConfigurationError(f"fail_modes for unknown quotas: {stray}")
        quotas: dict[str, Quota] = {}
        for name, spec in raw_quotas.items():
            merged = dict(spec) if isinstance(spec, Mapping) else spec
            if str(name) in overrides and isinstance(merged, dict):
                mode = overrides[str(name)]
                merged["fail"] = mode.value if isinstance(mode, FailMode) else mode
            quota = Quota.from_mapping(str(name), merged, default_scopes=scopes)
            outside = [s for s in quota.scopes if s not in scopes]
            if outside:
                raise ConfigurationError(
                    f"quota {name!r}: scopes {outside} are not in the catalogue scopes"
                )
            quotas[quota.name] = quota
        return cls(quotas=quotas, scopes=scopes)
