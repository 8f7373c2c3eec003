"""Guarded name resolution: the Sender connects only to addresses checked here."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from lassod.netguard import AddressPolicy, parse_literal_host


@dataclass(frozen=True)
class BlockedAddress:
    address: str
    reason: str


class BlockedTargetError(OSError):
    """Every address of a delivery target is one the address policy blocks."""

    def __init__(self, host: str, blocked: list[BlockedAddress]) -> None:
        reasons = ", ".join(f"{item.address} ({item.reason})" for item in blocked)
        super().__init__(f"target {host!r} is blocked: {reasons}")
        self.host = host
        self.blocked = blocked


class GuardedResolver(AbstractResolver):
    """Resolve with an inner resolver and return only the allowed addresses.

    aiohttp's TCPConnector connects to exactly the addresses this returns, so
    an answer that changes between resolutions (DNS rebinding) cannot reach
    an address that was not checked. The connector skips the resolver for IP
    literals, which is why `check_literal` exists for the Sender to call.
    """

    def __init__(
        self, policy: AddressPolicy, inner: AbstractResolver | None = None
    ) -> None:
        self._policy = policy
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = ThreadedResolver()
        answers = await self._inner.resolve(host, port, family)
        if not answers:
            raise OSError(f"no addresses found for {host!r}")
        allowed = []
        blocked = []
        for answer in answers:
            reason = self._reason(answer["host"])
            if reason is None:
                allowed.append(answer)
            else:
                blocked.append(BlockedAddress(answer["host"], reason))
        if not allowed:
            raise BlockedTargetError(host, blocked)
        return allowed

    def check_literal(self, host: str) -> None:
        """Raise BlockedTargetError if host is an IP literal the policy blocks."""
        address = parse_literal_host(host)
        if address is None:
            return
        reason = self._policy.blocked_reason(address)
        if reason is not None:
            raise BlockedTargetError(host, [BlockedAddress(str(address), reason)])

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()

    def _reason(self, answer: str) -> str | None:
        address = parse_literal_host(answer)
        if address is None:
            return "unparsable"
        return self._policy.blocked_reason(address)
