"""The one exception tree of fieldguard.

Every error carries its data in attributes so that adapters can map it to a
GraphQL ``extensions.code`` or an HTTP problem+json body without parsing
messages. The root is :class:`FieldGuardError`; nothing fieldguard raises on
purpose falls outside it.

Example:
    >>> from fieldguard.errors import QuotaExceeded
    >>> err = QuotaExceeded("daily record quota used up", retry_after=30)
    >>> (err.code, err.http_status, err.retry_after)
    ('RATE_LIMITED', 429, 30)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class FieldGuardError(Exception):
    """Root of every fieldguard error.

    Attributes:
        code: stable machine-readable code (GraphQL ``extensions.code``).
        http_status: the HTTP status a REST adapter answers with.
    """

    code = "FIELDGUARD_ERROR"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- configuration ---------------------------------------------------------


class ConfigurationError(FieldGuardError):
    """Bad configuration, raised at construction time, never per request."""

    code = "CONFIGURATION_ERROR"


@dataclass(frozen=True)
class PolicyProblem:
    """One problem found in a policy file, located as ``file:line:col``."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class PolicyError(ConfigurationError):
    """A policy or policy-data file does not load or compile.

    Attributes:
        problems: every located problem; ``str(err)`` lists them one per line.
    """

    code = "POLICY_ERROR"

    def __init__(self, problems: Sequence[PolicyProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems) or "policy error")


# -- engines ---------------------------------------------------------------


class EngineError(FieldGuardError):
    """The decision engine could not give an answer."""

    code = "POLICY_UNAVAILABLE"
    http_status = 503


class EngineUnavailable(EngineError):
    """The engine errored, timed out or could not be reached.

    Attributes:
        engine: the engine's name (``regorus``, ``opa-http``, ``opa-embedded``).
        path: the decision path asked for.
    """

    def __init__(self, message: str, *, engine: str = "", path: str = "") -> None:
        super().__init__(message)
        self.engine = engine
        self.path = path


class DecisionUndefined(EngineError):
    """The policy gave no result for the decision: undefined is not allow."""

    code = "POLICY_UNDEFINED"

    def __init__(self, path: str) -> None:
        super().__init__(f"decision {path} is undefined")
        self.path = path


class MalformedDecision(EngineError):
    """The policy answered with a value that does not fit the contract."""

    code = "POLICY_MALFORMED"

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"decision {path} does not fit the contract: {problem}")
        self.path = path
        self.problem = problem


# -- storage ---------------------------------------------------------------


class StorageError(FieldGuardError):
    """A quota or audit store failed; the driver's error is ``__cause__``.

    Attributes:
        backend: the storage URL scheme (``redis``, ``memory``, ``file``…).
    """

    code = "STORAGE_UNAVAILABLE"
    http_status = 503

    def __init__(self, message: str, *, backend: str = "") -> None:
        super().__init__(message)
        self.backend = backend


# -- access ----------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    """Why the policy decided what it did.

    Attributes:
        code: stable reason code (``quota.records_day``…).
        message: for humans.
        scope: which quota scope ran out (``subject``, ``app``, ``ip``,
            ``prefix``), so clients can tell "your account" from "your network".
            Other detail the policy adds (e.g. the matched CIDR) stays in the
            audit record, not in responses.
    """

    code: str
    message: str
    scope: str | None = None

    def as_dict(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.scope:
            out["scope"] = self.scope
        return out


class AccessError(FieldGuardError):
    """The policy refused the request or part of it.

    Attributes:
        reasons: the policy's reasons, in order.
        decision_id: the decision that refused, for the audit trail.
    """

    code = "FORBIDDEN"
    http_status = 403

    def __init__(
        self,
        message: str,
        *,
        reasons: Sequence[Reason] = (),
        decision_id: str | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.reasons = tuple(reasons)
        self.decision_id = decision_id
        self.extra = dict(extensions or {})


class AccessDenied(AccessError):
    """The operation, or a field of it, is denied (403 / ``FORBIDDEN``)."""


class QuotaExceeded(AccessError):
    """A read quota or rate limit is used up (429 / ``RATE_LIMITED``).

    Attributes:
        retry_after: seconds until the caller may try again.
    """

    code = "RATE_LIMITED"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ChallengeRequired(AccessError):
    """The caller must pass a challenge (e.g. a CAPTCHA) before going on."""

    code = "CHALLENGE_REQUIRED"
    http_status = 403


class BadRequest(AccessError):
    """The request itself is malformed or exceeds a static limit."""

    code = "BAD_REQUEST"
    http_status = 400
