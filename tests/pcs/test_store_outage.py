"""A database outage under load answers JSON 503s with Retry-After, never a 500; nothing is lost."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import httpx
import pytest
from django.db import connection

from apps.pcs.models import PcsRecord
from tests.support.servers import gunicorn, run_manage, server_env
from tests.support.tcp_proxy import TcpProxy

LOAD_SECONDS = 8.0
OUTAGE = (2.0, 5.0)  # seconds into the load when the database goes away and comes back
SENDERS = 4


@pytest.mark.slow
def test_database_outage_under_load_answers_503_json_and_replay_decides_what_was_refused(
    transactional_db, tenant, pcs_factory
):
    db = connection.settings_dict
    with TcpProxy((db["HOST"], int(db["PORT"]))) as proxy:
        through_proxy = f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}"
        # No tenant or policy caching: every request reads them, the path that used to answer 500.
        env = {"DATABASE_URL": through_proxy, "TENANT_CACHE_SECONDS": "0", "DB_CONN_MAX_AGE": "0"}
        answers: list[tuple[str, int, dict, dict]] = []
        lock = threading.Lock()
        with gunicorn(workers=2, **env) as server:
            start = time.monotonic()

            def send(worker: int) -> None:
                with httpx.Client(timeout=10) as client:
                    for i in range(10_000):
                        if time.monotonic() - start > LOAD_SECONDS:
                            return
                        pcs = pcs_factory(epoch=worker * 100_000 + i)
                        response = client.post(f"{server.url}/v1/pcs/submit", content=json.dumps(pcs))
                        with lock:
                            answers.append(
                                (pcs["pcs_id"], response.status_code, dict(response.headers), response.json())
                            )

            threads = [threading.Thread(target=send, args=(w,)) for w in range(SENDERS)]
            for t in threads:
                t.start()
            time.sleep(OUTAGE[0])
            proxy.cut()
            time.sleep(OUTAGE[1] - OUTAGE[0])
            proxy.restore()
            for t in threads:
                t.join()
            after = httpx.post(f"{server.url}/v1/pcs/submit", content=json.dumps(pcs_factory(epoch=999_999)))

    statuses = Counter(status for _, status, _, _ in answers)
    print(f"\nanswers during the outage test: {dict(statuses)}")
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] > 0 and statuses[200] > 0  # the outage was seen, and service came back
    for _, status, headers, body in answers:
        if status == 503:
            assert body["error"] == "store_unavailable" and body["detail"]
            assert int(headers["retry-after"]) >= 1
    assert after.status_code == 200

    # What was refused with 503 is still in the WAL: replay decides it, once.
    run_manage("wal", "replay", env=server_env())
    refused = {pcs_id for pcs_id, status, _, _ in answers if status == 503}
    decided = Counter(PcsRecord.objects.values_list("pcs_id", flat=True))
    assert refused <= set(decided)
    assert max(decided.values()) == 1
