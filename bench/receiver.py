"""A fast webhook receiver for the benchmark: a raw asyncio HTTP/1.1 server.

It listens on one or more ports of 127.0.0.1 and responds to every POST with 204, except paths starting with /hang, which
get no response until the sender gives up. It counts deliveries by event id, keeps
each event's first receipt time and checks the signature of a sample.
`GET /_stats` returns the counts as JSON and `POST /_reset` clears them;
`POST /_mark` restarts the clock of the next receipt (`mark_s`).
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import time

import orjson

from lassod import signing

SAMPLE_EVERY = 100
_NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


class Counts:
    """Receipts since the last reset."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.reset()

    def reset(self) -> None:
        self.total = 0
        self.hung = 0
        self.first_receipt: dict[str, float] = {}
        self.first_s: float | None = None
        self.last_s: float | None = None
        self.verified = 0
        self.bad_signatures = 0
        self.mark()

    def mark(self) -> None:
        """Start timing the next receipt without clearing the counts."""
        self.mark_s: float | None = None

    def record(self, headers: dict[bytes, bytes], body: bytes) -> None:
        now = time.time()
        self.total += 1
        if self.first_s is None:
            self.first_s = now
        self.last_s = now
        if self.mark_s is None:
            self.mark_s = now
        event_id = headers.get(b"x-lasso-event-id", b"").decode()
        self.first_receipt.setdefault(event_id, now)
        if self.total % SAMPLE_EVERY == 1:
            self._verify(headers, body)

    def _verify(self, headers: dict[bytes, bytes], body: bytes) -> None:
        expected = signing.lasso_signature(self.secret, body).encode()
        if hmac.compare_digest(headers.get(b"x-lasso-signature", b""), expected):
            self.verified += 1
        else:
            self.bad_signatures += 1

    def stats(self, with_receipts: bool) -> bytes:
        report = {
            "total": self.total,
            "unique": len(self.first_receipt),
            "hung": self.hung,
            "first_s": self.first_s,
            "mark_s": self.mark_s,
            "last_s": self.last_s,
            "verified": self.verified,
            "bad_signatures": self.bad_signatures,
        }
        if with_receipts:
            report["receipts"] = self.first_receipt
        return orjson.dumps(report)


class ReceiverProtocol(asyncio.Protocol):
    """Parse pipelined HTTP/1.1 requests with a Content-Length body."""

    def __init__(self, counts: Counts) -> None:
        self._counts = counts
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._transport is not None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self._buffer[:end]).split(b"\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            if len(self._buffer) < end + 4 + length:
                return
            body = bytes(self._buffer[end + 4 : end + 4 + length])
            del self._buffer[: end + 4 + length]
            self._answer(lines[0].split(b" "), headers, body)

    def _answer(self, request_line: list[bytes], headers: dict, body: bytes) -> None:
        method, path = request_line[0], request_line[1]
        if path.startswith(b"/hang"):
            self._counts.hung += 1
            return
        if path.startswith(b"/_stats"):
            self._send_json(self._counts.stats(b"receipts" in path))
            return
        if path.startswith(b"/_mark"):
            self._counts.mark()
            self._send_json(b"{}")
            return
        if path.startswith(b"/_reset"):
            self._counts.reset()
            self._send_json(b"{}")
            return
        if method == b"POST":
            self._counts.record(headers, body)
        self._transport.write(_NO_CONTENT)

    def _send_json(self, payload: bytes) -> None:
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode()
        self._transport.write(head + payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def serve(listeners: int, secret: str) -> None:
    """Listen on `listeners` free ports of 127.0.0.1, all sharing one count.

    Each port is its own `scheme://host:port` to lassod's per-host limit, so
    one receiver process can stand in for several hosts.
    """
    counts = Counts(secret)
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(
            lambda: ReceiverProtocol(counts), "127.0.0.1", 0, backlog=1024
        )
        for _ in range(listeners)
    ]
    ports = " ".join(str(server.sockets[0].getsockname()[1]) for server in servers)
    print(f"listening {ports}", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


def run_loop(coroutine: object) -> None:
    """Run a coroutine on uvloop when it is installed, else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)  # type: ignore[arg-type]
    else:
        uvloop.run(coroutine)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark webhook receiver.")
    parser.add_argument(
        "--listeners", type=int, default=1, help="ports to open on 127.0.0.1"
    )
    parser.add_argument("--secret", required=True, help="webhook secret to verify")
    args = parser.parse_args()
    run_loop(serve(args.listeners, args.secret))


if __name__ == "__main__":
    main()
