"""Typed views of the two decisions in the policy contract.

The policy answers with JSON; these parsers check its shape and fail closed:
anything that does not fit ``docs/policy-contract.md`` raises
:class:`MalformedDecision` rather than being guessed at, and a coordinate the
policy forgot is denied.

Example:
    >>> plan = Plan.parse({"allow": True, "outcome": "allow", "status": 200,
    ...                    "fields": {"User.email": {"effect": "mask", "mask": "email"}}})
    >>> plan.effect("User.email").effect, plan.effect("User.ssn").effect
    ('mask', 'deny')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fieldguard.errors import MalformedDecision, Reason

PLAN_PATH = "fieldguard.plan"
OBJECTS_PATH = "fieldguard.objects"

EffectName = Literal["allow", "deny", "mask", "check"]
OutcomeName = Literal["allow", "deny", "invalid", "throttle", "challenge"]
_EFFECTS = frozenset(("allow", "deny", "mask", "check"))
_OUTCOMES = frozenset(("allow", "deny", "invalid", "throttle", "challenge"))


@dataclass(frozen=True)
class FieldEffect:
    """What happens to one coordinate's values.

    Attributes:
        effect: ``allow``, ``deny``, ``mask`` or ``check`` (decide per object).
        mask: the masker name for ``mask`` (and the one ``check`` may use).
        reason: the policy's explanation, shown with denials.
    """

    effect: EffectName
    mask: str | None = None
    reason: str = ""


DENY_MISSING = FieldEffect("deny", reason="no decision for this field (fail closed)")


def _fail(path: str, problem: str) -> MalformedDecision:
    return MalformedDecision(path, problem)


def _effect(path: str, coord: str, raw: Any, *, allow_check: bool) -> FieldEffect:
    if not isinstance(raw, Mapping):
        raise _fail(path, f"fields[{coord!r}] is not an object")
    name = raw.get("effect")
    if name not in _EFFECTS or (name == "check" and not allow_check):
        raise _fail(path, f"fields[{coord!r}].effect {name!r} is not allowed here")
    mask = raw.get("mask")
    if mask is not None and not isinstance(mask, str):
        raise _fail(path, f"fields[{coord!r}].mask must be a string")
    if name == "mask" and not mask:
        raise _fail(path, f"fields[{coord!r}] masks without naming a masker")
    reason = raw.get("reason", "")
    return FieldEffect(name, mask, reason if isinstance(reason, str) else str(reason))


def _effects(path: str, raw: Any, *, allow_check: bool) -> dict[str, FieldEffect]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _fail(path, "fields is not an object")
    return {str(k): _effect(path, str(k), v, allow_check=allow_check) for k, v in raw.items()}


def _reasons(path: str, raw: Any) -> tuple[Reason, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise _fail(path, "reasons is not a list")
    out = []
    for item in raw:
        if not isinstance(item, Mapping):
            raise _fail(path, "a reason is not an object")
        scope = item.get("scope")
        out.append(Reason(str(item.get("code", "policy")), str(item.get("message", "")),
                          scope if isinstance(scope, str) else None))
    return tuple(out)


def _int(path: str, name: str, raw: Any, default: int) -> int:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _fail(path, f"{name} is not a number")
    return int(raw)


@dataclass(frozen=True)
class Plan:
    """The per-request plan (``data.fieldguard.plan``).

    Attributes:
        allow: True only when ``outcome`` is ``allow``.
        outcome: ``allow``, ``deny``, ``invalid``, ``throttle`` or ``challenge``.
        status: the HTTP status the outcome maps to.
        reasons: why, in order.
        retry_after: seconds to wait after a throttle.
        fields: effect per coordinate; see :meth:`effect`.
        limits: caps the policy applies (``max_page_size``…).
        charges: quota charges to apply after the response.
        raw: the policy's full answer (for audit and ``eval``).
    """

    allow: bool
    outcome: OutcomeName
    status: int
    reasons: tuple[Reason, ...] = ()
    retry_after: int = 0
    fields: Mapping[str, FieldEffect] = field(default_factory=dict)
    limits: Mapping[str, Any] = field(default_factory=dict)
    charges: tuple[Mapping[str, Any], ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def effect(self, coordinate: str) -> FieldEffect:
        """The effect for ``coordinate``; a coordinate the plan omits is denied."""
        return self.fields.get(coordinate, DENY_MISSING)

    @classmethod
    def parse(cls, raw: Any, path: str = PLAN_PATH) -> Plan:
        """Check and convert the policy's answer.

        Raises:
            MalformedDecision: the answer does not fit the contract.
        """
        if not isinstance(raw, Mapping):
            raise _fail(path, "the plan is not an object")
        outcome = raw.get("outcome", "allow" if raw.get("allow") is True else "deny")
        if outcome not in _OUTCOMES:
            raise _fail(path, f"unknown outcome {outcome!r}")
        allow = raw.get("allow") is True and outcome == "allow"
        if raw.get("allow") is True and outcome != "allow":
            raise _fail(path, f"allow is true but outcome is {outcome!r}")
        default_status = {"allow": 200, "invalid": 400, "throttle": 429}.get(outcome, 403)
        charges = raw.get("charges", ())
        if charges is None:
            charges = ()
        if isinstance(charges, str | Mapping) or not isinstance(charges, Sequence) or \
                not all(isinstance(c, Mapping) for c in charges):
            raise _fail(path, "charges is not a list of objects")
        limits = raw.get("limits", {})
        if limits is None:
            limits = {}
        if not isinstance(limits, Mapping):
            raise _fail(path, "limits is not an object")
        return cls(
            allow=allow,
            outcome=outcome,
            status=_int(path, "status", raw.get("status"), default_status),
            reasons=_reasons(path, raw.get("reasons")),
            retry_after=_int(path, "retry_after", raw.get("retry_after"), 0),
            fields=_effects(path, raw.get("fields"), allow_check=True),
            limits=dict(limits),
            charges=tuple(charges),
            raw=raw,
        )


@dataclass(frozen=True)
class ObjectVerdict:
    """The objects decision for one object shape.

    Attributes:
        visible: False drops the object from lists (null where it stands alone).
        fields: the per-object effect for each checked coordinate.
    """

    visible: bool
    fields: Mapping[str, FieldEffect]

    def effect(self, coordinate: str) -> FieldEffect:
        """The effect for ``coordinate``; one the policy omits is denied."""
        return self.fields.get(coordinate, DENY_MISSING)


HIDDEN = ObjectVerdict(False, {})


def parse_objects(raw: Any, expected: int, path: str = OBJECTS_PATH) -> list[ObjectVerdict]:
    """Check and convert ``data.fieldguard.objects`` for ``expected`` objects.

    Example:
        >>> parse_objects({"objects": [{"visible": True, "fields": {}}]}, 1)
        [ObjectVerdict(visible=True, fields={})]

    Raises:
        MalformedDecision: wrong shape or a length other than ``expected``.
    """
    if not isinstance(raw, Mapping) or not isinstance(raw.get("objects"), Sequence):
        raise _fail(path, "expected an object with an 'objects' list")
    items = raw["objects"]
    if len(items) != expected:
        raise _fail(path, f"{len(items)} verdicts for {expected} objects")
    out = []
    for item in items:
        if not isinstance(item, Mapping):
            raise _fail(path, "a verdict is not an object")
        out.append(
            ObjectVerdict(
                visible=item.get("visible") is True,
                fields=_effects(path, item.get("fields"), allow_check=False),
            )
        )
    return out
