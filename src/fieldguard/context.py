"""Who is asking, from where, and why: the caller facts every decision needs.

Apps build one :class:`Caller` per request (from a verified token, the socket
address, a purpose header…) and hand it to a plugin or adapter through a
callable. fieldguard never parses tokens itself: verify them in your app and
pass the claims here.

Example:
    >>> c = Caller(Subject("u7", roles=("support",)), Client("203.0.113.9"), purpose="support")
    >>> c.as_input()["client"]["prefix"], c.subject.authenticated
    ('203.0.113.0/24', True)
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from fieldguard.errors import BadRequest


def canonical_ip(ip: str) -> str:
    """The address in canonical form; IPv4-mapped IPv6 (``::ffff:a.b.c.d``, what
    a dual-stack socket reports for IPv4 clients) becomes plain IPv4, so deny
    lists and quotas written for IPv4 apply on every engine.

    Example:
        >>> canonical_ip("::ffff:192.0.2.200"), canonical_ip("2001:DB8::1")
        ('192.0.2.200', '2001:db8::1')

    Raises:
        BadRequest: ``ip`` is not an IP address.
    """
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError as exc:
        raise BadRequest(f"not an IP address: {ip!r}") from exc
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def ip_prefix(ip: str) -> str:
    """The network a caller's address belongs to: IPv4 /24, IPv6 /64.

    Example:
        >>> ip_prefix("2001:db8::1"), ip_prefix("10.1.2.3")
        ('2001:db8::/64', '10.1.2.0/24')

    Raises:
        BadRequest: ``ip`` is not an IP address.
    """
    addr = ipaddress.ip_address(canonical_ip(ip))
    bits = 24 if addr.version == 4 else 64
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


@dataclass(frozen=True)
class Subject:
    """The authenticated account (or nobody: ``Subject.anonymous()``).

    Attributes:
        id: the account id; None for anonymous callers.
        roles, scopes: what the app's identity layer granted.
        tier: an explicit tier override (``verified``…), else the policy derives it.
        verified: the account passed verification.
        account_age_days: age of the account, for new-account velocity rules.
    """

    id: str | None
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    tier: str | None = None
    verified: bool = False
    account_age_days: int | None = None

    @classmethod
    def anonymous(cls) -> Subject:
        """The unauthenticated caller."""
        return cls(None)

    @property
    def authenticated(self) -> bool:
        """True when there is an account id."""
        return self.id is not None

    def as_input(self) -> dict[str, Any]:
        """The ``input.subject`` document."""
        return {
            "id": self.id,
            "authenticated": self.authenticated,
            "roles": list(self.roles),
            "scopes": list(self.scopes),
            "tier": self.tier,
            "verified": self.verified,
            "account_age_days": self.account_age_days,
        }


@dataclass(frozen=True)
class Client:
    """The calling network peer and application.

    Attributes:
        ip: the peer address (after your trusted-proxy handling).
        app: the API client / application id, if any.
        user_agent: the User-Agent header.
    """

    ip: str
    app: str | None = None
    user_agent: str = ""

    @property
    def prefix(self) -> str:
        """The caller's /24 (IPv4) or /64 (IPv6)."""
        return ip_prefix(self.ip)

    def as_input(self) -> dict[str, Any]:
        """The ``input.client`` document (address in canonical form).

        Raises:
            BadRequest: the address is not an IP address.
        """
        return {"ip": canonical_ip(self.ip), "prefix": self.prefix, "app": self.app,
                "user_agent": self.user_agent}


@dataclass(frozen=True)
class Caller:
    """Everything about the caller that the policy sees.

    Attributes:
        subject: the account.
        client: the network peer and app.
        purpose: the declared purpose of processing (``support``…), or None.
        request_id: becomes the decision id when given (as OPA's SDK allows).
        labels: free-form labels copied into audit records.
    """

    subject: Subject
    client: Client
    purpose: str | None = None
    request_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def as_input(self) -> dict[str, Any]:
        """The caller part of a decision input."""
        return {"subject": self.subject.as_input(), "client": self.client.as_input(),
                "purpose": self.purpose}
