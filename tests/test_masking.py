from __future__ import annotations

import datetime as dt

import pytest

from fieldguard.errors import ConfigurationError
from fieldguard.masking import MaskerRegistry


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("email", "ada@example.org", "a***@example.org"),
    ("email", "not-an-email", "[redacted]"),
    ("phone_last4", "+44 20 7946 0958", "•••0958"),
    ("phone_last4", None, None),
    ("truncate", "Amsterdam", "Ams…"),
    ("redact", "secret", "[redacted]"),
    ("year_only", "1990-04-02", "1990"),
    ("year_only", dt.date(1984, 1, 1), "1984"),
])
def test_builtin_maskers(name: str, value: object, expected: object) -> None:
    assert MaskerRegistry().apply(name, value) == expected


def test_hash_is_keyed_and_stable() -> None:
    a, b = MaskerRegistry(hash_key=b"k1"), MaskerRegistry(hash_key=b"k2")
    assert a.apply("hash", "x") == a.apply("hash", "x") != b.apply("hash", "x")
    assert a.apply("hash", None) is None


def test_lists_are_masked_item_by_item() -> None:
    assert MaskerRegistry().apply("redact", ["a", "b"]) == ["[redacted]", "[redacted]"]


def test_unknown_masker_is_a_configuration_error() -> None:
    reg = MaskerRegistry()
    with pytest.raises(ConfigurationError, match="unknown masker 'nope'"):
        reg.apply("nope", 1)
    with pytest.raises(ConfigurationError):
        reg.register("bad", "not callable")  # type: ignore[arg-type]
    reg.register("initial", lambda v: str(v)[:1])
    assert reg.apply("initial", "Zed") == "Z" and "initial" in reg
