"""What a second copy of a decided PCS gets, through real gunicorn with PostgreSQL and Redis.

A retry gets the stored answer even after Redis lost it, whatever its sent_at or attempt; a copy
whose unsigned decision inputs were changed on the way is a conflict naming them, in either order,
and never learns the other copy's answer.
"""

from __future__ import annotations

import json

import httpx
import pytest
import redis
from django.conf import settings

from apps.audit.models import AuditEntry
from apps.pcs.models import PcsRecord
from tests.support.servers import gunicorn


def _post(client: httpx.Client, url: str, pcs: dict) -> httpx.Response:
    return client.post(f"{url}/v1/pcs/submit", content=json.dumps(pcs))


@pytest.mark.slow
def test_a_retry_after_redis_lost_its_data_gets_the_stored_answer_not_a_new_judgement(
    transactional_db, tenant, pcs_factory
):
    pcs = pcs_factory(epoch=1)
    with gunicorn(workers=2) as server, httpx.Client(timeout=10) as client:
        first = _post(client, server.url, pcs)
        redis.Redis.from_url(settings.REDIS_URL).flushdb()  # Redis restarted empty
        # Sent again much later, by an agent whose clock skew check would now fail.
        late = dict(pcs, attempt=9, sent_at="2020-01-01T00:00:00Z", ft={**pcs["ft"], "outbox_seq": 77})
        again = _post(client, server.url, late)
        third = _post(client, server.url, late)  # now from the hot store again
    assert first.status_code == 200
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content == third.content
    assert PcsRecord.objects.count() == 1
    assert AuditEntry.objects.filter(kind="decision").count() == 1


def _tampered(pcs: dict) -> dict[str, dict]:
    """Copies of ``pcs`` with unsigned decision inputs changed: the signature still verifies."""
    n_j = dict(pcs["N_j"])
    n_j[str(pcs["scales"][-1])] += 1
    flipped = [-v for v in pcs["v_star"]]
    return {
        "N_j": dict(pcs, N_j=n_j),
        "scales,N_j": dict(
            pcs,
            scales=pcs["scales"][:-1],
            N_j={k: v for k, v in pcs["N_j"].items() if k != str(pcs["scales"][-1])},
        ),
        "v_star": dict(pcs, v_star=flipped),
        "seed": dict(pcs, seed=pcs["seed"] + 1),
        "regime": dict(pcs, regime="non_sticky" if pcs["regime"] != "non_sticky" else "sticky"),
        "vrf_proof": dict(pcs, vrf_proof="ab" * 80),
        "ft.degraded": dict(pcs, ft={**pcs["ft"], "degraded": not pcs["ft"]["degraded"]}),
    }


@pytest.mark.slow
def test_a_copy_with_changed_decision_inputs_is_a_conflict_in_either_order(
    transactional_db, tenant, pcs_factory
):
    cases = []
    with gunicorn(workers=2) as server, httpx.Client(timeout=10) as client:
        for order in ("tampered_first", "genuine_first"):
            for index, (fields, _) in enumerate(_tampered(pcs_factory(epoch=0)).items()):
                genuine = pcs_factory(epoch=1000 * (order == "genuine_first") + 10 + index)
                tampered = _tampered(genuine)[fields]
                first, second = (tampered, genuine) if order == "tampered_first" else (genuine, tampered)
                decided = _post(client, server.url, first)
                conflict = _post(client, server.url, second)
                cases.append((order, fields, decided, conflict, genuine["pcs_id"]))
    for order, fields, decided, conflict, pcs_id in cases:
        assert decided.status_code in (200, 202), (order, fields, decided.text)
        assert conflict.status_code == 422, (order, fields, conflict.text)
        body = conflict.json()
        assert body["error"] == "pcs_id_conflict"
        assert body["fields"] == fields.split(","), (order, body)
        # Nothing of the decided copy's answer leaks into the conflict.
        assert not {"accepted", "escalated", "recomputed_D_hat", "audit_index"} & set(body)
        assert "Idempotent-Replayed" not in conflict.headers
        record = PcsRecord.objects.get(pcs_id=pcs_id)
        assert record.response == decided.text  # the first decision stands, unchanged
    assert AuditEntry.objects.filter(kind="decision").count() == len(cases)


@pytest.mark.slow
def test_chunked_bodies_are_read_and_an_oversized_one_is_refused_while_it_is_read(
    transactional_db, tenant, pcs_factory, settings
):
    import select
    import socket
    import urllib.parse

    pcs = pcs_factory(epoch=5)
    body = json.dumps(pcs).encode()

    def chunks():
        for i in range(0, len(body), 100):
            yield body[i : i + 100]

    with gunicorn(workers=1) as server:
        with httpx.Client(timeout=10) as client:
            response = client.post(f"{server.url}/v1/pcs/submit", content=chunks())
        assert response.request.headers["Transfer-Encoding"] == "chunked"
        assert response.status_code == 200, response.text

        # 100 MB offered in chunks: the answer comes long before the body would end.
        host, port = urllib.parse.urlsplit(server.url).netloc.split(":")
        sent, piece = 0, b"x" * 65536
        frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        with socket.create_connection((host, int(port)), timeout=2) as sock:
            sock.sendall(
                b"POST /v1/pcs/submit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            while sent < 100 * 1024 * 1024 and not select.select([sock], [], [], 0)[0]:
                try:
                    sock.sendall(frame)
                except (TimeoutError, BrokenPipeError, ConnectionResetError):
                    break  # the server stopped reading
                sent += len(piece)
            answer = b""
            while b"}" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413"), answer[:200]
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["error"] == "payload_too_large"
    assert sent < 10 * 1024 * 1024  # refused while reading, not after 100 MB
    assert PcsRecord.objects.count() == 1
