"""Fuzz the review operations of the live OpenAPI document with a ``review`` token, against gunicorn.

The project-wide fuzz (tests/test_openapi_fuzz.py) calls these operations with a read token, so it
only ever sees their 403. Here every case gets past the scope check and reaches the services: no 5xx,
and only documented statuses, with real escalated PCS to aim at.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode

from apps.tenants.services import token_issue
from tests.conftest import _kit
from tests.review.conftest import escalate
from tests.support.servers import gunicorn
from tests.test_openapi_fuzz import Run, fuzz


@pytest.mark.slow
def test_review_operations_answer_only_documented_statuses_and_never_5xx(
    transactional_db, multi_tenant, tmp_path: Path
):
    acme = _kit("acme")
    _, token = token_issue(tenant=acme.tenant, name="reviewer", actor="test", scope="review")
    pcs_ids = [p["pcs_id"] for p in escalate(acme.signer, epochs=[1, 2, 3], tenant_header="acme")]
    log = tmp_path / "gunicorn.log"
    with gunicorn(workers=2, log=log, MULTI_TENANT="true") as server, requests.Session() as session:
        schema = schemathesis.openapi.from_url(f"{server.url}/v1/openapi.json", config=schemathesis.Config())
        cases: Counter[str] = Counter()
        statuses: Counter[tuple[str, int]] = Counter()
        failures: list[str] = []
        headers = {"Authorization": f"Bearer {token}"}
        for result in schema.get_all_operations():
            operation = result.ok()
            if not operation.path.startswith("/v1/review/"):
                continue
            label = f"{operation.method.upper()} {operation.path}"
            names = {parameter.name for parameter in operation.path_parameters}
            known = {"pcs_id": pcs_ids[0]} if "pcs_id" in names else {}
            modes = [operation.as_strategy(GenerationMode.POSITIVE)]
            if known:
                modes.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known))
            modes.append(operation.as_strategy(GenerationMode.NEGATIVE))
            run = Run(label, server.url, session, headers, cases, statuses, failures)
            for case in schema.iter_coverage_cases(
                operation,
                generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                generation_config=schema.config.generation_for(operation=operation),
            ):
                run.exercise(case)
            fuzz(run, st.one_of(modes))
    seen = ", ".join(f"{label} {status}×{n}" for (label, status), n in sorted(statuses.items()))
    print(
        f"\nschemathesis: {sum(cases.values())} cases over {len(cases)} review operations\nstatuses: {seen}"
    )
    server_errors = [line for line in log.read_text(errors="replace").splitlines() if "Traceback" in line]
    assert not failures, "\n\n".join(failures[:10]) + f"\n\n{len(failures)} failing cases"
    assert not server_errors, log.read_text(errors="replace")[-5000:]
    assert len(cases) == 6
    assert any(status == 200 for (label, status) in statuses if "decision" in label)  # cases got through
