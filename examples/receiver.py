"""A minimal webhook receiver that verifies lassod's signature.

Run: python examples/receiver.py --port 9000 --secret YOUR_SECRET
It needs only the Python standard library. It prints each delivery and
returns 200 when the X-Lasso-Signature header matches, 401 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify(secret: str, body: bytes, header: str) -> bool:
    """Check X-Lasso-Signature: sha256=<hex HMAC-SHA256 of the exact body>."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def make_handler(secret: str | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            event = self.headers.get("X-Lasso-Event")
            event_id = self.headers.get("X-Lasso-Event-Id")
            if secret is not None:
                signature = self.headers.get("X-Lasso-Signature", "")
                if not verify(secret, body, signature):
                    print(f"REJECTED {event} {event_id}: signature does not match", flush=True)
                    self.send_response(401)
                    self.end_headers()
                    return
                state = "verified"
            else:
                state = "unsigned"
            print(f"{state} {event} {event_id}: {json.loads(body)}", flush=True)
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        message = f"expected a port from 1 to 65535, got {text!r}"
        raise argparse.ArgumentTypeError(message)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description="Print and verify lassod webhooks.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=port_number, default=9000, help="port to listen on"
    )
    parser.add_argument("--secret", help="the webhook secret; omit to accept unsigned deliveries")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args.secret))
    print(f"listening on http://{args.host}:{args.port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
