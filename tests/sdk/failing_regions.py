"""Stand-ins for a region that fails: a port nothing listens on, and a server that answers only 503.

The 503 server is not FLK: it stands in for a region that is up but fails closed (its database down),
which a test cannot make the real live server do for one request while another region answers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UNAVAILABLE = {"error": "store_unavailable", "detail": "the database is unavailable"}
DEAD_ENDPOINT = "http://127.0.0.1:9"  # discard port: nothing listens, the connection is refused


@dataclass
class UnavailableRegion:
    """A running 503 server: its base URL and how many submissions it answered."""

    url: str = ""
    hits: int = 0


@contextmanager
def unavailable_region() -> Iterator[UnavailableRegion]:
    """Run a local server that answers every POST with 503 store_unavailable and Retry-After: 5."""
    region = UnavailableRegion()

    class Unavailable(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            region.hits += 1
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.dumps(UNAVAILABLE).encode()
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", "5")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    region.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield region
    finally:
        server.shutdown()
        server.server_close()
