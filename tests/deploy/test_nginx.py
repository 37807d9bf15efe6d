"""The shipped nginx front: slow clients, chunked and oversized bodies, its own errors as JSON.

nginx runs from deployments/nginx/ as rendered by render.py, in front of real gunicorn started with
deployments/gunicorn.conf.py on a unix socket (as `make run` does), on PostgreSQL and Redis.
The slow-client figures go to stdout (-s) and to test-artifacts/deploy/slow_clients.json.
"""

from __future__ import annotations

import json
import os
import select
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from tests.conftest import submit
from tests.support.nginx import Front, gunicorn_unix, nginx_front
from tests.support.servers import ROOT

pytestmark = pytest.mark.slow

ARTIFACTS = Path(os.environ.get("FLK_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "deploy"


@pytest.fixture
def front(transactional_db, tenant, tmp_path) -> Iterator[Front]:
    """nginx in front of gunicorn (2 workers x 4 threads) on the test database."""
    with (
        gunicorn_unix(socket_path=tmp_path / "gunicorn.sock", log=tmp_path / "gunicorn.log") as upstream,
        nginx_front(directory=tmp_path / "nginx", upstream=upstream) as nginx,
    ):
        yield nginx


# -- slow clients ------------------------------------------------------------------------------

SLOW_CONNECTIONS = 50
DECLARED_BODY_BYTES = 1000
ATTACK_HEAD_START_SECONDS = 2.0
TRAFFIC_SECONDS = 12.0
TRAFFIC_RATE_PER_SECOND = 4.0
ANSWER_BOUND_SECONDS = 10.0


class SlowBodies:
    """Connections that send their headers and then one body byte per second, on one thread."""

    def __init__(self, *, port: int, count: int) -> None:
        self.sockets: list[socket.socket] = []
        self.bytes_sent = 0
        self._stop = threading.Event()
        head = (
            "POST /v1/pcs/submit HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {DECLARED_BODY_BYTES}\r\n\r\n"
        ).encode()
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(head)
            self.sockets.append(sock)
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _trickle(self) -> None:
        while not self._stop.wait(1.0):
            for sock in self.sockets:
                try:
                    sock.send(b" ")
                    self.bytes_sent += 1
                except OSError:
                    pass  # counted as closed by still_open()

    def still_open(self) -> int:
        """Connections the server has neither answered nor closed."""
        readable, _, _ = select.select(self.sockets, [], [], 0)
        return len(self.sockets) - len(readable)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


def _send_paced(url: str, bodies: list[dict]) -> list[tuple[float, int | None]]:
    """POST each body at TRAFFIC_RATE_PER_SECOND, each on its own thread; (latency, status) per body."""

    def one(body: dict) -> tuple[float, int | None]:
        started = time.monotonic()
        try:
            with httpx.Client(base_url=url, timeout=ANSWER_BOUND_SECONDS) as client:
                status = submit(client, body).status_code
        except httpx.TransportError:
            status = None
        return time.monotonic() - started, status

    futures = []
    with ThreadPoolExecutor(max_workers=32) as pool:
        start = time.monotonic()
        for i, body in enumerate(bodies):
            time.sleep(max(0.0, start + i / TRAFFIC_RATE_PER_SECOND - time.monotonic()))
            futures.append(pool.submit(one, body))
        return [future.result() for future in futures]


def test_slow_bodies_do_not_starve_the_service(front, pcs_factory):
    bodies = [pcs_factory(epoch=i) for i in range(int(TRAFFIC_SECONDS * TRAFFIC_RATE_PER_SECOND))]
    attack = SlowBodies(port=front.port, count=SLOW_CONNECTIONS)
    try:
        time.sleep(ATTACK_HEAD_START_SECONDS)
        results = _send_paced(front.url, bodies)
        held = attack.still_open()
    finally:
        attack.stop()

    latencies = sorted(latency for latency, _ in results)
    within_one_second = sum(latency <= 1.0 for latency in latencies) / len(latencies)
    figures = {
        "arrangement": "nginx (deployments/nginx) -> gunicorn gthread 2 workers x 4 threads on a unix socket",
        "slow_connections": SLOW_CONNECTIONS,
        "slow_connections_still_open_at_end": held,
        "slow_body_bytes_sent": attack.bytes_sent,
        "requests": len(results),
        "answered_200": sum(status == 200 for _, status in results),
        "share_within_1s": round(within_one_second, 3),
        "latency_p50_s": round(statistics.median(latencies), 3),
        "latency_max_s": round(latencies[-1], 3),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "slow_clients.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nslow clients through nginx: {json.dumps(figures)}")

    # The attack was real for the whole run: nginx held every slow connection open (1 byte/s stays
    # within client_body_timeout), and none of them reached gunicorn.
    assert held == SLOW_CONNECTIONS
    # Every normal submission was decided, within a bound far above any healthy answer.
    assert [status for _, status in results] == [200] * len(results)
    assert latencies[-1] < ANSWER_BOUND_SECONDS


# -- bodies ------------------------------------------------------------------------------------


def test_chunked_pcs_is_decided(front, pcs_factory):
    body = json.dumps(pcs_factory(epoch=1)).encode()
    with httpx.Client(base_url=front.url, timeout=10) as client:
        # An iterator makes httpx send Transfer-Encoding: chunked; nginx forwards a Content-Length.
        answer = client.post(
            "/v1/pcs/submit",
            content=iter([body[:100], body[100:]]),
            headers={"Content-Type": "application/json"},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] is True


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = (line.partition(":") for line in lines[1:])
    headers = {name.strip().lower(): value.strip() for name, _, value in fields}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def test_100_mb_chunked_body_is_cut_off_early_with_json_413(front):
    limit = 100 * 1024 * 1024
    piece = b"x" * 65536
    frame = b"%x\r\n" % len(piece) + piece + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", front.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/pcs/submit HTTP/1.1\r\nHost: flk\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        while sent < limit:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer is there: stop sending
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
            sent += len(piece)
        status, headers, body = _read_response(sock)
    print(f"\n100 MB chunked body: nginx answered {status} after {sent} bytes were sent")
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "error": "payload_too_large",
        "detail": f"body exceeds {settings.MAX_BODY_BYTES} bytes",
    }
    # The answer came while the client was still sending: nginx did not wait for 100 MB.
    assert sent < limit / 4


@pytest.mark.parametrize(
    ("path", "size", "refused_by_nginx"),
    [
        ("/v1/pcs/submit", settings.MAX_BODY_BYTES + 1, True),
        # At the limit nginx lets it through and the application decides (400: not a PCS).
        ("/v1/pcs/submit", settings.MAX_BODY_BYTES, False),
        # The batch endpoint has its own, larger limit.
        ("/v1/pcs/submit:batch", settings.MAX_BODY_BYTES * 4, False),
    ],
)
def test_body_limits_per_location_match_the_application(front, path, size, refused_by_nginx):
    with httpx.Client(base_url=front.url, timeout=10) as client:
        answer = client.post(path, content=b" " * size, headers={"Content-Type": "application/json"})
    if refused_by_nginx:
        assert answer.status_code == 413
        assert answer.json() == {
            "error": "payload_too_large",
            "detail": f"body exceeds {settings.MAX_BODY_BYTES} bytes",
        }
    else:
        assert answer.status_code != 413
        # The request reached gunicorn: nginx logged an upstream time for it. nginx writes the line
        # as it finalises the request, which may be just after the client has the answer.
        log = front.directory / "access.log"
        deadline = time.monotonic() + 5
        while not (lines := log.read_text().splitlines()) and time.monotonic() < deadline:
            time.sleep(0.05)
        last = lines[-1]
        assert f'"POST {path} HTTP/1.1"' in last
        assert "upstream_time=-" not in last


# -- nginx's own errors --------------------------------------------------------------------------


def test_gunicorn_down_is_a_json_502_with_retry_after(tmp_path, pcs_factory):
    with (
        nginx_front(directory=tmp_path / "nginx", upstream=f"unix:{tmp_path / 'nobody.sock'}") as nginx,
        httpx.Client(base_url=nginx.url, timeout=10) as client,
    ):
        answers = [client.get("/healthz"), submit(client, pcs_factory(epoch=1))]
    for answer in answers:
        assert answer.status_code == 502
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["retry-after"] == str(settings.RETRY_AFTER_SECONDS)
        assert answer.json()["error"] == "bad_gateway"
        assert answer.json()["detail"]


def test_unparseable_request_is_a_json_400(front):
    with socket.create_connection(("127.0.0.1", front.port), timeout=10) as sock:
        sock.sendall(b"NOT AN HTTP REQUEST\r\n\r\n")
        status, headers, body = _read_response(sock)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == "bad_request"


# -- what gunicorn is told about the client -------------------------------------------------------


class _EchoHeaders(BaseHTTPRequestHandler):
    """Answers every GET with the request headers it received, as JSON."""

    def do_GET(self) -> None:
        body = json.dumps({name.lower(): value for name, value in self.headers.items()})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args) -> None:
        pass


def test_client_address_headers_cannot_be_spoofed(tmp_path):
    # The upstream here only echoes headers: it stands where gunicorn stands, on a loopback port.
    echo = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHeaders)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    try:
        with nginx_front(directory=tmp_path / "nginx", upstream=f"127.0.0.1:{echo.server_port}") as nginx:
            seen = httpx.get(
                f"{nginx.url}/anything",
                headers={"X-Real-IP": "203.0.113.9", "X-Forwarded-For": "198.51.100.7"},
                timeout=10,
            ).json()
    finally:
        echo.shutdown()
        echo.server_close()
    assert seen["x-real-ip"] == "127.0.0.1"  # nginx's peer, not what the client claimed
    assert seen["x-forwarded-for"] == "198.51.100.7, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["host"] == f"127.0.0.1:{nginx.port}"
