"""The guard: shared configuration, and one :class:`Session` per request.

A :class:`Guard` is built once at startup (engine, maskers, audit sink,
optional limiter) and checks its configuration then. Every request gets its
own :class:`Session`, which holds all per-request state: the plan, the
memo of object decisions, the exposure tally. Plugins and adapters are thin
layers that feed a session with what their framework knows.

Engine calls per request: one ``plan``, plus one ``objects`` call per batch
that contains an object *shape* (type, relation to the caller, the attributes
the policy reads) not seen before in this request. Shapes are few (a thousand
users with three privacy settings are a handful), so the count does not grow
with the size of the response. On the embedded engines, shapes an earlier
request of the same caller decided under the same policy revision are not
asked again either: a verdict cache, on by default there (``verdict_cache``
in :class:`Guard`; shapes and the cache live in :mod:`fieldguard.objects`).

Example:
    >>> from fieldguard.context import Caller, Client, Subject
    >>> from fieldguard.policies.source import PolicySet
    >>> rego = '''package fieldguard
    ... plan := {"allow": true, "outcome": "allow", "status": 200,
    ...          "fields": {f.coordinate: {"effect": "allow"} | some f in input.fields}}
    ... objects := {"objects": [{"visible": true, "fields": {}} | some _ in input.objects]}
    ... '''
    >>> guard = Guard(policy=PolicySet.from_sources([("p.rego", rego)]))
    >>> caller = Caller(Subject("u1"), Client("203.0.113.7"))
    >>> session = guard.session(caller)
    >>> plan = session.decide(Operation("rest", "query", "GET /users",
    ...                                 fields={"User.name": 1}))
    >>> plan.effect("User.name").effect, session.engine_calls
    ('allow', 1)
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fieldguard.audit.events import AuditEvent, Exposure
from fieldguard.audit.sinks import AuditSink
from fieldguard.context import Caller
from fieldguard.errors import (
    AccessDenied,
    AccessError,
    BadRequest,
    ChallengeRequired,
    ConfigurationError,
    EngineError,
    FieldGuardError,
    QuotaExceeded,
    StorageError,
)
from fieldguard.masking import MaskerRegistry
from fieldguard.objects import (
    DEFAULT_VERDICT_CACHE,
    OWNING_ENGINES,
    Shape,
    TypeSpec,
    VerdictCache,
    caller_key,
    nondeterministic_calls,
    read_attr,
    read_shapes,
    snake_case,
)
from fieldguard.policies.contract import (
    OBJECTS_PATH,
    PLAN_PATH,
    FieldEffect,
    ObjectVerdict,
    Plan,
    parse_objects,
)
from fieldguard.policies.decision import Decision
from fieldguard.policies.engine import DEFAULT_ENGINE_URL, Engine, engine_from_url
from fieldguard.policies.source import PolicySet, load_policy_set
from fieldguard.quotas import RequestQuotas

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Classification:
    """The parts of ``data.policy.classification`` Python needs.

    Attributes:
        types: object types that get per-object decisions.
        tags: classification tags per coordinate (data overrides code).
        default_tags: tags of coordinates not listed.
    """

    types: Mapping[str, TypeSpec] = field(default_factory=dict)
    tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    default_tags: tuple[str, ...] = ("public",)

    @classmethod
    def from_policy(cls, policy: PolicySet | None) -> Classification:
        """Read the classification from a policy's data (empty when absent).

        Raises:
            ConfigurationError: the classification data has the wrong shape.
        """
        raw = policy.policy_data.get("classification", {}) if policy else {}
        if not isinstance(raw, Mapping):
            raise ConfigurationError("policies/classification: expected a mapping")
        types: dict[str, TypeSpec] = {}
        for name, spec in (raw.get("types") or {}).items():
            if not isinstance(spec, Mapping):
                raise ConfigurationError(f"classification.types.{name}: expected a mapping")
            attrs = spec.get("attrs") or []
            if not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs):
                raise ConfigurationError(f"classification.types.{name}.attrs: list of names")
            types[name] = TypeSpec(name, spec.get("subject"), spec.get("owner"), tuple(attrs))
        tags = {
            coord: tuple(spec.get("tags") or ())
            for coord, spec in (raw.get("coordinates") or {}).items()
            if isinstance(spec, Mapping)
        }
        return cls(types, tags, tuple(raw.get("default_tags") or ("public",)))

    def tags_for(self, coordinate: str, code_tags: Iterable[str] = ()) -> tuple[str, ...]:
        """Tags of ``coordinate``: the data's, else the code's, else the defaults."""
        if coordinate in self.tags:
            return self.tags[coordinate]
        code = tuple(code_tags)
        return code or self.default_tags

    def is_personal(self, coordinate: str, code_tags: Iterable[str] = ()) -> bool:
        """True when the coordinate carries any tag other than ``public``."""
        return any(t != "public" for t in self.tags_for(coordinate, code_tags))


@dataclass
class Operation:
    """What one request asks for, as the plan sees it.

    Attributes:
        protocol: ``graphql`` or ``rest``.
        type: ``query``, ``mutation`` or ``subscription``.
        name: the operation name or route.
        fields: occurrences per coordinate.
        complexity: depth, aliases, fields, cost, max_list.
        code_tags: tags from code annotations, per coordinate.
        probed_ids: ids asked for by argument (enumeration signal).
        introspection: the operation reads the schema.
    """

    protocol: str
    type: str
    name: str | None
    fields: Mapping[str, int] = field(default_factory=dict)
    complexity: Mapping[str, int] = field(default_factory=dict)
    code_tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    probed_ids: tuple[str, ...] = ()
    introspection: bool = False


class FailMode(enum.Enum):
    """What a failed objects decision does to the affected values."""

    DENY = "deny"  # null + error on each affected value; objects hidden
    REJECT = "reject"  # the whole request fails


class Guard:
    """Shared, immutable enforcement configuration.

    Args:
        engine: an :class:`Engine` or an engine URL (default ``regorus://``).
        policy: the policy to load; by default ``rego_dir`` + ``data_dir``.
        rego_dir: Rego modules (default ``rego``).
        data_dir: policy data (default ``policies``).
        maskers: masker registry (built-ins by default).
        audit: sink for one event per decided operation; a sink that fails
            turns the response into an error (nothing unaudited is released).
        limiter: a ``fieldguard.limits.Limiter``, a storage URL (``memory://``,
            ``redis://host:6379/0``…) to build one from the policy's quota
            catalogue, or None for no quotas.
        object_fail_mode: what a failed objects decision does.
        engine_options: passed to :func:`engine_from_url`.
        verdict_cache: entries of a verdict cache shared by all sessions;
            0 for none. By default (None) engines that evaluate a policy
            fieldguard owns (``regorus://``, ``opa-embedded://``) get
            :data:`~fieldguard.objects.DEFAULT_VERDICT_CACHE` entries and
            others none. An objects verdict is kept per (policy revision,
            caller part of the objects input, checked coordinates of the
            type, object shape), least recently used out first, so a
            request asks the engine only for shapes no earlier request of the
            same caller, coordinates and policy revision had decided, and
            makes no objects call when every shape is cached. A hot reload
            changes the revision, so stale verdicts are never served. The
            cache stays off (a warning says why) while the policy serving
            mentions a non-deterministic builtin (``time.now_ns``,
            ``http.send``, ``rand.intn``, ``uuid.rfc4122``, ``opa.runtime``,
            ``net.lookup_ip_addr``), and for engines that evaluate a policy
            fieldguard does not own (``opa+http(s)://``: the server's policy
            can change without its revision changing here) unless
            ``verdict_cache_force``.
        verdict_cache_force: cache verdicts even for such an engine, trusting
            its reported revision to change with its policy.

    Raises:
        ConfigurationError: bad engine URL, policy that does not compile,
            malformed classification, a masker the policy data names but
            nobody registered, or a negative ``verdict_cache``.

    Example (the second request of a caller finds its verdict in the cache):
        >>> from fieldguard.context import Caller, Client, Subject
        >>> rego = '''package fieldguard
        ... plan := {"allow": true, "outcome": "allow", "status": 200,
        ...          "fields": {f.coordinate: {"effect": "check"} | some f in input.fields}}
        ... objects := {"objects": [{"visible": true, "fields": {}} | some _ in input.objects]}
        ... '''
        >>> types = {"User": {"owner": "id", "attrs": ["visibility"]}}
        >>> policy = PolicySet.from_sources(
        ...     [("p.rego", rego)], {"policy": {"classification": {"types": types}}})
        >>> guard = Guard(policy=policy, verdict_cache=10_000)
        >>> def request():
        ...     session = guard.session(Caller(Subject("u1"), Client("203.0.113.7")))
        ...     session.decide(Operation("graphql", "query", None, fields={"User.email": 1}))
        ...     session.verdicts("User", [{"id": "u2", "visibility": "public"}])
        ...     return session.engine_calls, session.objects_cached
        >>> request(), request()  # (plan + objects, 0 cached), (plan only, 1 cached)
        ((2, 0), (1, 1))
    """

    def __init__(
        self,
        engine: Engine | str = DEFAULT_ENGINE_URL,
        *,
        policy: PolicySet | None = None,
        rego_dir: str = "rego",
        data_dir: str = "policies",
        maskers: MaskerRegistry | None = None,
        audit: AuditSink | None = None,
        limiter: Any = None,
        object_fail_mode: FailMode = FailMode.DENY,
        engine_options: Mapping[str, Any] | None = None,
        verdict_cache: int | None = None,
        verdict_cache_force: bool = False,
    ) -> None:
        if verdict_cache is not None and (
                isinstance(verdict_cache, bool) or not isinstance(verdict_cache, int) or
                verdict_cache < 0):
            raise ConfigurationError("verdict_cache is a number of entries (0: no cache)")
        if policy is None and isinstance(engine, str):
            policy = load_policy_set(rego_dir, data_dir)
        if isinstance(engine, str):
            engine = engine_from_url(engine, policy, **dict(engine_options or {}))
        elif policy is not None:
            engine.load(policy)
        if not isinstance(engine, Engine):
            raise ConfigurationError(f"{engine!r} is not a fieldguard Engine")
        self.engine = engine
        self.maskers = maskers or MaskerRegistry()
        self.audit = audit
        if isinstance(limiter, str):
            limiter = self._limiter_from_url(limiter, policy)
        self.limiter = limiter
        self.object_fail_mode = FailMode(object_fail_mode)
        self._policy = policy
        #: the verdict cache shared by sessions (None: off), see ``verdict_cache``
        self.verdict_cache: VerdictCache | None = None
        name = getattr(engine, "name", type(engine).__name__)
        if verdict_cache is None:  # the default: on where fieldguard owns the policy
            verdict_cache = DEFAULT_VERDICT_CACHE if name in OWNING_ENGINES else 0
        if verdict_cache:
            if name in OWNING_ENGINES or verdict_cache_force:
                self.verdict_cache = VerdictCache(verdict_cache)
                logger.info("verdict cache on: %d entries (engine %s)", verdict_cache, name)
            else:
                logger.warning(
                    "verdict cache off: engine %s evaluates a policy fieldguard does not own "
                    "(it may change behind our back); pass verdict_cache_force=True to "
                    "trust its revision", name)
        self._class_lock = threading.Lock()
        self._serving_state = _Serving("", Classification(), cacheable=False)
        self.classification()  # validate now, not on the first request
        self._check_maskers(policy)

    @staticmethod
    def _limiter_from_url(url: str, policy: PolicySet | None) -> Any:
        from fieldguard.limits import Limiter

        catalogue = policy.policy_data.get("limits") if policy else None
        if not isinstance(catalogue, Mapping):
            raise ConfigurationError(
                "a limiter URL needs the quota catalogue (data.policy.limits) of a local "
                "policy; pass a Limiter built with Limiter.from_url(url, quotas=…) instead")
        return Limiter.from_url(url, quotas=catalogue)

    def _check_maskers(self, policy: PolicySet | None) -> None:
        coords = policy.policy_data.get("classification", {}) if policy else {}
        names = {
            spec["mask"]
            for spec in (coords.get("coordinates") or {}).values()
            if isinstance(spec, Mapping) and isinstance(spec.get("mask"), str)
        }
        self.maskers.check(names)

    def current_policy(self) -> PolicySet | None:
        """The policy now serving, when the engine exposes it (hot reload)."""
        live = getattr(self.engine, "policy", None)
        return live if isinstance(live, PolicySet) else self._policy

    def classification(self) -> Classification:
        """The classification of the policy now serving (cached per revision)."""
        return self._serving().classification

    def verdict_cache_active(self) -> bool:
        """True when sessions share verdicts under the policy now serving."""
        return self._serving().cacheable

    def _serving(self) -> _Serving:
        """What sessions need of the policy now serving, worked out once per
        revision: its classification, and whether its verdicts may be cached."""
        revision = self.engine.revision
        state = self._serving_state
        if state.revision == revision and revision:
            return state
        with self._class_lock:
            policy = self.current_policy()
            fresh = Classification.from_policy(policy)
            # '' names no policy; a policy other than the revision's is a reload
            # caught half-way: neither may key cached verdicts
            cacheable = self.verdict_cache is not None and bool(revision) and (
                policy is None or policy.revision == revision)
            if cacheable:
                calls = nondeterministic_calls(policy)
                if calls:
                    cacheable = False
                    logger.warning(
                        "verdict cache off for policy %s: it uses non-deterministic builtins "
                        "(%s), so its verdicts are not a function of their input",
                        revision, "; ".join(calls))
            state = _Serving(revision, fresh, cacheable)
            if policy is None or policy.revision == revision:
                self._serving_state = state
            return state

    def session(self, caller: Caller) -> Session:
        """A new per-request session for ``caller``."""
        return Session(self, caller)


@dataclass(frozen=True)
class _Serving:
    revision: str
    classification: Classification
    cacheable: bool


#: The parts of the plan input the objects decision also gets.
OBJECTS_CALLER_KEYS = ("subject", "client", "purpose")


class Session:
    """All state of one request. Never share a session between requests.

    Attributes:
        caller: who is asking.
        plan: the plan, once :meth:`decide` ran.
        exposure: what left the API so far.
        engine_calls: evaluations made for this request.
        objects_evaluated: object shapes the engine decided for this request.
        objects_cached: object shapes whose verdict came from the guard's
            verdict cache instead.
    """

    def __init__(self, guard: Guard, caller: Caller) -> None:
        self.guard = guard
        self.caller = caller
        serving = guard._serving()
        self.classification = serving.classification
        self._revision = serving.revision
        self._verdict_cache = guard.verdict_cache if serving.cacheable else None
        self._caller_key: str | None = None
        self.plan: Plan | None = None
        self.operation: Operation | None = None
        self.exposure = Exposure()
        self.engine_calls = 0
        self.eval_ns = 0
        self.objects_evaluated = 0
        self.objects_cached = 0
        self.decision_id: str | None = caller.request_id
        self.errors: list[str] = []
        self._input: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._by_shape: dict[Shape, ObjectVerdict] = {}
        self._by_object: dict[int, tuple[Any, ObjectVerdict, str | None]] = {}
        self._check_coords: dict[str, list[str]] = {}
        #: the outcome when the plan allowed but the request was refused
        #: afterwards (its reservation was refused, or storage failed)
        self._refused: str | None = None
        #: quota usage, the reservation and the record budget (fieldguard.quotas)
        self.quotas = RequestQuotas(guard.limiter, caller, self.errors)
        self._started = time.perf_counter_ns()
        self._finished = False

    # -- the plan ------------------------------------------------------------

    def plan_input(self, op: Operation) -> dict[str, Any]:
        """The ``data.fieldguard.plan`` input for ``op``."""
        cls = self.classification
        doc = self.caller.as_input()
        doc["operation"] = {
            "protocol": op.protocol, "type": op.type, "name": op.name,
            "introspection": op.introspection, "complexity": dict(op.complexity),
        }
        doc["fields"] = [
            {"coordinate": c, "tags": list(cls.tags_for(c, op.code_tags.get(c, ()))),
             "count": n}
            for c, n in sorted(op.fields.items())
        ]
        doc["usage"] = {}
        doc["signals"] = {}
        return doc

    def decide(self, op: Operation) -> Plan:
        """Ask the plan once for ``op`` and raise unless it allows; then
        reserve the request's estimate on the plan's quotas.

        Raises:
            AccessDenied, QuotaExceeded, ChallengeRequired, BadRequest: the
                plan refused, with its reasons (or, QuotaExceeded, requests in
                flight took the room the plan saw).
            EngineError: undefined, unavailable or malformed decision.
            StorageError: quota storage failed (fail closed).
        """
        doc = self._begin(op)
        self.quotas.read(doc)
        plan = self._accept(self.guard.engine.evaluate(PLAN_PATH, doc,
                                                       decision_id=self.decision_id))
        with self._reserving():
            self.quotas.reserve(op, plan, self.decision_id)
        return plan

    async def adecide(self, op: Operation) -> Plan:
        """Async :meth:`decide`: the quota round trips and the evaluation are
        awaited, so the event loop serves other requests meanwhile."""
        doc = self._begin(op)
        await self.quotas.aread(doc)
        plan = self._accept(await self.guard.engine.aevaluate(PLAN_PATH, doc,
                                                              decision_id=self.decision_id))
        with self._reserving():
            await self.quotas.areserve(op, plan, self.decision_id)
        return plan

    def _begin(self, op: Operation) -> dict[str, Any]:
        self.operation = op
        doc = self._input = self.plan_input(op)
        return doc

    def _accept(self, decision: Decision) -> Plan:
        """The plan of ``decision``; raises unless it allows."""
        self.engine_calls += 1
        self.eval_ns += decision.eval_ns
        self.decision_id = decision.decision_id
        try:
            plan = Plan.parse(decision.require())
        except EngineError as exc:
            self.errors.append(exc.code)
            raise
        self.plan = plan
        if not plan.allow:
            err = self._refusal(plan)
            self.errors.append(err.code)
            raise err
        self._check_coords = {}
        for coord, eff in plan.fields.items():
            if eff.effect == "check":
                type_name = coord.split(".", 1)[0]
                self._check_coords.setdefault(type_name, []).append(coord)
        for coords in self._check_coords.values():
            coords.sort()  # one order for the input and the cache key
        return plan

    @contextmanager
    def _reserving(self) -> Iterator[None]:
        try:
            yield
        except QuotaExceeded:  # requests in flight took the room the plan saw
            self._refused = "throttle"
            raise
        except FieldGuardError as exc:  # storage down (fail closed), malformed charges
            self._refused = exc.code.lower()
            raise

    @property
    def outcome(self) -> str | None:
        """The request's outcome so far: the plan's, ``throttle`` when the
        plan allowed but the reservation was refused, the error code
        (``storage_unavailable``…) when reserving failed; None before a plan."""
        if self._refused is not None:
            return self._refused
        return self.plan.outcome if self.plan is not None else None

    def _refusal(self, plan: Plan) -> AccessError:
        msg = "; ".join(r.message for r in plan.reasons) or f"request {plan.outcome}"
        kw: dict[str, Any] = {"reasons": plan.reasons, "decision_id": self.decision_id}
        if plan.outcome == "throttle":
            return QuotaExceeded(msg, retry_after=max(plan.retry_after, 1), **kw)
        if plan.outcome == "challenge":
            return ChallengeRequired(msg, **kw)
        if plan.outcome == "invalid":
            return BadRequest(msg, **kw)
        return AccessDenied(msg, **kw)

    def effect(self, coordinate: str) -> FieldEffect:
        """The plan's effect for ``coordinate`` (deny before a plan exists)."""
        if self.plan is None:
            return FieldEffect("deny", reason="no plan")
        return self.plan.effect(coordinate)

    # -- objects -------------------------------------------------------------

    def is_guarded_type(self, type_name: str) -> bool:
        """True when objects of this type get per-object decisions."""
        return type_name in self.classification.types

    def verdicts(self, type_name: str, objs: Sequence[Any]) -> list[ObjectVerdict]:
        """Decide ``objs`` of one type in one batch (memoised per shape).

        Raises:
            EngineError: the objects decision failed; callers turn it into
                null/hidden values (or a failed request with ``REJECT``).
        """
        spec = self.classification.types[type_name]
        shapes = read_shapes(spec, objs, self.caller.subject.id)
        by_shape = self._by_shape
        new = [shape for shape in shapes.first if shape not in by_shape]
        if new:
            cache = self._verdict_cache
            prefix = self._cache_prefix(type_name) if cache is not None else None
            if cache is not None and prefix is not None:
                hits = cache.get_many(prefix, new)
                if hits:
                    with self._lock:
                        by_shape.update(hits)
                        self.objects_cached += len(hits)
                    new = [shape for shape in new if shape not in hits]
            if new:
                self._decide_shapes(
                    type_name, {shape: shapes.item(spec, shape) for shape in new}, prefix)
        # every shape is decided now (a failed decision raised above)
        if len(shapes.first) == 1:  # one object, or all alike
            out = [by_shape[next(iter(shapes.first))]] * len(objs)
        else:
            at = {pos: by_shape[shape] for shape, pos in shapes.first.items()}
            out = list(map(at.__getitem__, shapes.position))
        if len(objs) == 1:
            self._by_object[id(objs[0])] = (objs[0], out[0], shapes.subjects[0])
        else:
            self._by_object.update(zip(map(id, objs), zip(objs, out, shapes.subjects,
                                                          strict=True), strict=True))
        return out

    def _cache_prefix(self, type_name: str) -> tuple[str, str, tuple[str, ...]] | None:
        """The verdict cache key of this request's objects of ``type_name``
        (all but the shape), or None when the policy changed since the
        request began (its shapes were read under the old classification)."""
        if self.guard.engine.revision != self._revision:
            return None
        key = self._caller_key
        if key is None:
            key = self._caller_key = caller_key(self.objects_caller())
        return self._revision, key, tuple(self._check_coords.get(type_name, ()))

    def _decide_shapes(self, type_name: str, missing: dict[Shape, dict[str, Any]],
                       prefix: tuple[str, str, tuple[str, ...]] | None = None) -> None:
        doc = self.objects_caller()
        doc["coordinates"] = self._check_coords.get(type_name, [])
        doc["objects"] = list(missing.values())
        decision = self.guard.engine.evaluate(
            OBJECTS_PATH, doc, decision_id=self.decision_id
        )
        with self._lock:
            self.engine_calls += 1
            self.eval_ns += decision.eval_ns
            self.objects_evaluated += len(missing)
        try:
            verdicts = parse_objects(decision.require(), len(missing))
        except EngineError as exc:
            with self._lock:
                self.errors.append(exc.code)
            raise
        decided = dict(zip(missing, verdicts, strict=True))
        with self._lock:
            self._by_shape.update(decided)
        cache = self._verdict_cache
        if cache is not None and prefix is not None and decision.revision == prefix[0]:
            cache.put_many(prefix, decided)

    def objects_caller(self) -> dict[str, Any]:
        """The caller part of the objects input: ``subject``, ``client`` and
        ``purpose`` as the plan saw them, nothing request-level (no
        ``operation``, ``usage`` or ``signals``), so that the objects decision
        is a function of who asks, the coordinates and the objects alone."""
        return {k: self._input[k] for k in OBJECTS_CALLER_KEYS if k in self._input}

    @property
    def verdict_memo(self) -> Mapping[int, tuple[Any, ObjectVerdict, str | None]]:
        """Decided objects by ``id()``: (object, verdict, data-subject id)."""
        return self._by_object

    def take_records(self, wanted: int) -> int:
        """Take up to ``wanted`` records from the request's budget; returns
        how many may be released (the rest are withheld and counted)."""
        return self.quotas.take_records(wanted)

    @property
    def record_budget(self) -> int | None:
        """Guarded records this request may still release (None: unlimited)."""
        return self.quotas.record_budget

    @property
    def reserved_records(self) -> int | None:
        """Records reserved for this request (None: no record quota)."""
        return self.quotas.reserved_records

    @property
    def truncated(self) -> int:
        """Records withheld because the budget ran out."""
        return self.quotas.truncated

    def verdict_of(self, type_name: str, obj: Any) -> tuple[ObjectVerdict, str | None]:
        """The verdict and data-subject id of one object (batch-decided
        earlier when it came in a list; decided now otherwise)."""
        hit = self._by_object.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1], hit[2]
        self.verdicts(type_name, [obj])
        hit = self._by_object[id(obj)]
        return hit[1], hit[2]

    def subject_of(self, type_name: str, obj: Any) -> str | None:
        """The data-subject id of ``obj`` if its type names one."""
        spec = self.classification.types.get(type_name)
        if spec is None or spec.subject is None:
            return None
        hit = self._by_object.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[2]
        value = read_attr(obj, spec.subject)
        return None if value is None else str(value)

    # -- client signals --------------------------------------------------------

    def cost_status(self, requested: int) -> dict[str, Any]:
        """The GraphQL ``extensions.cost`` object (see
        :meth:`fieldguard.quotas.RequestQuotas.cost_status`)."""
        return self.quotas.cost_status(self.plan, requested)

    def rate_limit_headers(self) -> dict[str, str]:
        """IETF ``RateLimit-Policy`` / ``RateLimit`` headers for the tightest
        record quota, after this request's records are counted."""
        return self.quotas.rate_limit_headers(self.plan, self.exposure.records)

    # -- the end -------------------------------------------------------------

    def charge(self, cost: int = 0) -> None:
        """Charge what was actually exposed against the plan's quotas.

        Settles the reservation :meth:`decide` made: the counters keep what
        the response exposed and the unreserved rest is refunded, in one round
        trip. Call it once the response is final and before :meth:`finish`.

        Raises:
            StorageError: the quota store failed after the data was produced;
                the caller must not release it (:meth:`finish` then gives the
                reservation back if storage allows).
        """
        if self.plan is not None:
            self.quotas.charge(self.plan, self.exposure, self.operation, cost)

    async def acharge(self, cost: int = 0) -> None:
        """Async :meth:`charge`."""
        if self.plan is not None:
            await self.quotas.acharge(self.plan, self.exposure, self.operation, cost)

    def release(self) -> bool:
        """Give back what this request holds on the quotas: it failed, and
        nothing of it leaves the API (see
        :meth:`fieldguard.quotas.RequestQuotas.release`). :meth:`finish`
        calls this itself for a request that was never charged, and when the
        audit sink fails. Returns True when something was given back."""
        return self.quotas.release(self.decision_id)

    async def arelease(self) -> bool:
        """Async :meth:`release`."""
        return await self.quotas.arelease(self.decision_id)

    def finish(self, outcome: str | None = None) -> AuditEvent:
        """Emit the audit event for this request (once) and return it.

        A request that holds a reservation it never charged (it failed, or
        was refused after :meth:`decide`) gives it back first; if the sink
        fails, what :meth:`charge` counted is given back too (see
        :meth:`release`).

        Raises:
            StorageError: the sink could not keep the record; the caller must
                answer with an error instead of data.
        """
        if not self._finished and self.quotas.holds_reservation:
            self.release()  # never charged: nothing of this request left the API
        event = self._event(outcome)
        sink = self._sink_once()
        if sink is not None:
            try:
                sink.emit(event)
            except StorageError:
                self.release()  # the response becomes an error: refund its charge
                raise
            except Exception as exc:  # a sink bug must not release unaudited data
                self.release()
                raise _sink_failed(exc) from exc
        return event

    async def afinish(self, outcome: str | None = None) -> AuditEvent:
        """Async :meth:`finish`: a sink with an ``aemit`` coroutine (the JSON
        Lines sink writes and fsyncs in a worker thread) is awaited."""
        if not self._finished and self.quotas.holds_reservation:
            await self.arelease()
        event = self._event(outcome)
        sink = self._sink_once()
        if sink is not None:
            try:
                aemit = getattr(sink, "aemit", None)
                if aemit is not None:
                    await aemit(event)
                else:
                    sink.emit(event)
            except StorageError:
                await self.arelease()
                raise
            except Exception as exc:
                await self.arelease()
                raise _sink_failed(exc) from exc
        return event

    def _sink_once(self) -> AuditSink | None:
        """The sink to write to, the first time the request finishes."""
        if self._finished:
            return None
        self._finished = True
        return self.guard.audit

    def _event(self, outcome: str | None) -> AuditEvent:
        plan = self.plan
        return AuditEvent(
            decision_id=self.decision_id or "",
            path=PLAN_PATH,
            input=self._input,
            result=dict(plan.raw) if plan else None,
            revision=self.guard.engine.revision,
            outcome=outcome or self.outcome or "unavailable",
            engine=self.guard.engine.name,
            exposure=self.exposure.as_dict(),
            metrics={
                "engine_calls": self.engine_calls,
                "timer_eval_ns": self.eval_ns,
                "objects_evaluated": self.objects_evaluated,
                "objects_cached": self.objects_cached,
                "timer_request_ns": time.perf_counter_ns() - self._started,
            },
            errors=sorted(set(self.errors)),
            labels=dict(self.caller.labels),
        )


def _sink_failed(exc: Exception) -> StorageError:
    """A sink bug becomes a storage error: no unaudited data is released."""
    return StorageError(f"audit sink failed: {exc}", backend="audit")


__all__ = [
    "Classification",
    "FailMode",
    "Guard",
    "Operation",
    "Session",
    "TypeSpec",
    "read_attr",
    "snake_case",
]
