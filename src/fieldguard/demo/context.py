"""The demo's request context: the caller and the data.

Example:
    >>> from fieldguard.context import Caller, Client, Subject
    >>> ctx = DemoContext(Caller(Subject(None), Client("192.0.2.1")), world=None)
    >>> caller_of(ctx).subject.authenticated
    False
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fieldguard.context import Caller


@dataclass
class DemoContext:
    """Per-request context: who calls, and the store to read."""

    caller: Caller
    world: Any


def caller_of(ctx: Any) -> Caller:
    """The ``caller`` function the plugins need."""
    return ctx.caller  # type: ignore[no-any-return]
