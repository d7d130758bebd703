"""Maskers: named functions that turn a value into what may be shown.

The policy names a masker (``{"effect": "mask", "mask": "email"}``); the
registry turns the name into a function. Unknown names are a configuration
error found when a guard starts, never a value passed through.

Example:
    >>> m = MaskerRegistry()
    >>> m.apply("email", "ada@example.org"), m.apply("phone_last4", "+44 20 7946 0958")
    ('a***@example.org', '•••0958')
    >>> m.register("initial", lambda v: str(v)[:1] + ".")
    >>> m.apply("initial", "Lovelace")
    'L.'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from typing import Any

from fieldguard.errors import ConfigurationError

Masker = Callable[[Any], Any]


def mask_email(value: Any) -> Any:
    """Keep the first character of the local part and the domain."""
    if not isinstance(value, str) or "@" not in value:
        return redact(value)
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}"


_NON_DIGITS = re.compile(r"\D")
_YEAR = re.compile(r"\s*(\d{4})")


def phone_last4(value: Any) -> Any:
    """Keep the last four digits."""
    digits = _NON_DIGITS.sub("", str(value)) if value is not None else ""
    return f"•••{digits[-4:]}" if digits else None


def truncate(value: Any, keep: int = 3) -> Any:
    """Keep the first ``keep`` characters."""
    if value is None:
        return None
    text = str(value)
    return text[:keep] + "…" if len(text) > keep else text


def redact(value: Any) -> Any:
    """Replace the value entirely."""
    return None if value is None else "[redacted]"


def year_only(value: Any) -> Any:
    """Keep only the year of a date (``1990-04-02`` → ``1990``)."""
    if isinstance(value, dt.date):
        return str(value.year)
    match = _YEAR.match(str(value)) if value is not None else None
    return match.group(1) if match else redact(value)


def make_hash(key: bytes) -> Masker:
    """A keyed hash (HMAC-SHA256, 16 hex digits): joinable, not reversible.

    The key keeps a small value space (phone numbers, birthdays) from being
    brute-forced back to the value, which a plain hash would allow.
    """

    def _hash(value: Any) -> Any:
        if value is None:
            return None
        return hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()[:16]

    return _hash


class MaskerRegistry:
    """Named maskers; the built-ins plus whatever the app registers.

    Args:
        hash_key: the HMAC key of the ``hash`` masker; give one per deployment.
    """

    def __init__(self, hash_key: bytes = b"fieldguard") -> None:
        self._maskers: dict[str, Masker] = {
            "email": mask_email,
            "phone_last4": phone_last4,
            "hash": make_hash(hash_key),
            "truncate": truncate,
            "redact": redact,
            "year_only": year_only,
        }

    def register(self, name: str, masker: Masker) -> None:
        """Add or replace the masker called ``name``."""
        if not callable(masker):
            raise ConfigurationError(f"masker {name!r} is not callable")
        self._maskers[name] = masker

    def get(self, name: str) -> Masker:
        """The masker called ``name``.

        Raises:
            ConfigurationError: no such masker.
        """
        try:
            return self._maskers[name]
        except KeyError:
            known = ", ".join(sorted(self._maskers))
            raise ConfigurationError(f"unknown masker {name!r}; known: {known}") from None

    def apply(self, name: str, value: Any) -> Any:
        """Mask ``value`` with masker ``name``; lists are masked item by item."""
        masker = self.get(name)
        if isinstance(value, list | tuple):
            return [masker(v) for v in value]
        return masker(value)

    def check(self, names: Iterable[str]) -> None:
        """Raise ConfigurationError for any name without a masker."""
        for name in names:
            self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._maskers
