"""Decisions shaped like OPA's: an id, a path, and one of three outcomes.

An engine answers with a value, with *undefined* (the policy has no rule that
applies), or not at all (*unavailable*: an error or a timeout). Only a value
can ever release data; :meth:`Decision.require` turns the other two outcomes
into typed errors so that callers cannot forget to fail closed.

Example:
    >>> d = Decision.undefined("fieldguard.plan", revision="r1")
    >>> d.outcome is Outcome.UNDEFINED
    True
    >>> d.require()
    Traceback (most recent call last):
    ...
    fieldguard.errors.DecisionUndefined: decision fieldguard.plan is undefined
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from typing import Any

from fieldguard.errors import DecisionUndefined, EngineUnavailable


class Outcome(enum.Enum):
    """The three outcomes of an evaluation."""

    VALUE = "value"
    UNDEFINED = "undefined"
    UNAVAILABLE = "unavailable"


def new_decision_id() -> str:
    """A fresh decision id (a UUID4 string), as OPA's decision logs use."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Decision:
    """One evaluated decision.

    Attributes:
        path: the decision path in dotted form, e.g. ``fieldguard.plan``.
        outcome: value, undefined or unavailable.
        result: the JSON value when ``outcome`` is VALUE, else None.
        revision: the policy revision (content hash) that decided.
        decision_id: the caller's request id or a fresh UUID.
        engine: the engine's name.
        error: why the engine was unavailable, else None.
        eval_ns: time the engine took, in nanoseconds.
    """

    path: str
    outcome: Outcome
    result: Any = None
    revision: str = ""
    decision_id: str = field(default_factory=new_decision_id)
    engine: str = ""
    error: str | None = None
    eval_ns: int = 0

    @classmethod
    def undefined(cls, path: str, **kw: Any) -> Decision:
        """An undefined decision for ``path``."""
        return cls(path=path, outcome=Outcome.UNDEFINED, **kw)

    @classmethod
    def unavailable(cls, path: str, error: str, **kw: Any) -> Decision:
        """An unavailable decision for ``path`` with the error text."""
        return cls(path=path, outcome=Outcome.UNAVAILABLE, error=error, **kw)

    @property
    def defined(self) -> bool:
        """True only when the engine answered with a value."""
        return self.outcome is Outcome.VALUE

    def require(self) -> Any:
        """The value, or the typed error that undefined/unavailable means.

        Raises:
            DecisionUndefined: the policy gave no result.
            EngineUnavailable: the engine failed or timed out.
        """
        if self.outcome is Outcome.VALUE:
            return self.result
        if self.outcome is Outcome.UNDEFINED:
            raise DecisionUndefined(self.path)
        raise EngineUnavailable(
            f"policy engine unavailable for {self.path}: {self.error}",
            engine=self.engine,
            path=self.path,
        )
