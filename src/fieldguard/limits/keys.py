"""Who a request is counted against: subject, app, IP address and IP prefix.

A scraper rotating addresses inside one network still lands in one *prefix*
bucket: IPv4 addresses are grouped by /24 and IPv6 addresses by /64 (one
customer's delegation is usually a /64 or wider, so a /128 key would be
trivially evaded).

Example:
    >>> k = QuotaKeys.from_request(subject_id="u7", app=None, ip="203.0.113.9")
    >>> (k.ip, k.prefix, k.principal)
    ('203.0.113.9', '203.0.113.0/24', ('subject', 'u7'))
    >>> QuotaKeys.from_request(ip="2001:db8:1:2:3:4:5:6").prefix
    '2001:db8:1:2::/64'
    >>> QuotaKeys.from_request(ip="not-an-ip").ip
    'invalid'
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from fieldguard.errors import BadRequest

#: The ip/prefix key shared by every request whose address does not parse.
INVALID = "invalid"

IPV4_PREFIX = 24
IPV6_PREFIX = 64


def normalize_ip(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Parse ``ip``; brackets and IPv6 zone ids are stripped, IPv4-mapped IPv6
    addresses become IPv4 (so one client never gets two sets of buckets).

    Raises:
        ValueError: not an IP address.
    """
    text = ip.strip().removeprefix("[").removesuffix("]").split("%", 1)[0]
    addr = ipaddress.ip_address(text)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def ip_prefix(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The /24 (IPv4) or /64 (IPv6) network containing ``addr``, as text."""
    bits = IPV4_PREFIX if addr.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


def storage_safe(key: str) -> str:
    """``key`` with ``{``, ``}``, spaces and control characters percent-encoded.

    Braces would otherwise change the Redis Cluster hash tag of the counter key.
    """
    return quote(key, safe=":/.@-_+=,;!~*'()[]")


@dataclass(frozen=True)
class QuotaKeys:
    """The scope keys of one request; ``None`` means "not counted under that scope".

    Attributes:
        subject: the authenticated subject id (None for anonymous callers).
        app: the client application id (None when unknown).
        ip: the normalized address, or ``"invalid"``.
        prefix: the /24 or /64 network, or ``"invalid"``.
    """

    subject: str | None
    app: str | None
    ip: str | None
    prefix: str | None

    @classmethod
    def from_request(
        cls,
        subject_id: str | None = None,
        app: str | None = None,
        ip: str | None = None,
        *,
        on_invalid_ip: Literal["bucket", "reject"] = "bucket",
    ) -> QuotaKeys:
        """Build the keys of a request.

        Args:
            subject_id: the authenticated subject, None when anonymous.
            app: the client application, None when unknown.
            ip: the caller's address as the adapter resolved it.
            on_invalid_ip: ``bucket`` (default) counts every unparsable address
                under the one shared key ``"invalid"`` — garbage in a forwarded
                header then buys no fresh quota, it shares one (fail closed
                without breaking deployments that pass odd peer names);
                ``reject`` raises :class:`BadRequest` instead.

        Raises:
            BadRequest: ``on_invalid_ip="reject"`` and ``ip`` does not parse.

        Example:
            >>> QuotaKeys.from_request("u7", "partner-x", "::ffff:198.51.100.7").prefix
            '198.51.100.0/24'
        """
        ip_key: str | None = None
        prefix_key: str | None = None
        if ip is not None:
            try:
                addr = normalize_ip(ip)
            except ValueError:
                if on_invalid_ip == "reject":
                    raise BadRequest(f"invalid client address {ip!r}") from None
                ip_key = prefix_key = INVALID
            else:
                ip_key, prefix_key = str(addr), ip_prefix(addr)
        return cls(
            subject=subject_id or None,
            app=app or None,
            ip=ip_key,
            prefix=prefix_key,
        )

    @property
    def anonymous(self) -> bool:
        """True when no subject is known (anonymous quotas always fail closed)."""
        return self.subject is None

    def for_scope(self, scope: str) -> str | None:
        """The key for ``scope`` (``subject``, ``app``, ``ip``, ``prefix``) or None."""
        value = getattr(self, scope, None) if scope in ("subject", "app", "ip", "prefix") else None
        return value if isinstance(value, str) else None

    @property
    def principal(self) -> tuple[str, str] | None:
        """Whom behavioural signals are kept for: the subject, else the IP address."""
        if self.subject is not None:
            return ("subject", self.subject)
        if self.ip is not None:
            return ("ip", self.ip)
        return None
