"""Fuzz every operation of the live OpenAPI document with schemathesis, against real gunicorn.

The schema is loaded from the running server (what a client downloads). Every operation gets
schemathesis' coverage cases (boundary values, wrong types, values breaking each pattern, other
methods) and ``MAX_EXAMPLES`` random ones (valid, aimed at the tenant's real ids, and breaking the
schema on purpose), sent with the right token so they get past authentication: a read token, and a
``policy`` token for the policy API. Two checks hold for every answer: no 5xx, and the status is one
the operation documents.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from apps.audit.checkpoints import checkpoint_seal
from apps.tenants.services import token_issue
from tests.conftest import _kit
from tests.support.pcs_factory import make_pcs
from tests.support.servers import gunicorn

MAX_EXAMPLES = 50  # random requests per operation, besides the coverage cases
FUZZ_SEED = 20260101  # fixed: the same requests on every run
CHECKS = [not_a_server_error, status_code_conformance]

# Operations left out of the fuzz, by "METHOD /path". Empty: every documented operation is fuzzed.
EXCLUDED_OPERATIONS: frozenset[str] = frozenset()


def _setting(**overrides: object) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,  # nothing written to .hypothesis/; the seed makes runs repeatable
        derandomize=False,
        suppress_health_check=list(hypothesis.HealthCheck),
        # Report failures as found: shrinking would replay hundreds of requests per failure.
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        **overrides,
    )


@dataclass
class Run:
    """Where one operation's cases go, and what they found."""

    label: str
    base_url: str
    session: requests.Session
    headers: dict[str, str]
    cases: Counter[str]
    statuses: Counter[tuple[str, int]]
    failures: list[str]

    def exercise(self, case: schemathesis.Case) -> None:
        self.cases[self.label] += 1
        try:
            response = case.call(
                base_url=self.base_url, session=self.session, headers=self.headers, timeout=30
            )
        except requests.RequestException as exc:  # a dropped connection is a server failure too
            self.failures.append(f"{self.label}: {type(exc).__name__}: {exc}")
            return
        self.statuses[(self.label, response.status_code)] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=self.headers)
        except Exception as exc:  # schemathesis' FailureGroup: its message has a curl command
            self.failures.append(f"{self.label}:\n{exc}")


def fuzz(run: Run, strategy: st.SearchStrategy) -> None:
    """Send ``MAX_EXAMPLES`` cases of ``strategy``; failures are collected, not raised, so all are seen."""

    @hypothesis.seed(FUZZ_SEED)
    @_setting()
    @hypothesis.given(case=strategy)
    def cases(case: schemathesis.Case) -> None:
        run.exercise(case)

    cases()


@pytest.mark.slow
def test_every_operation_answers_only_documented_statuses_and_never_5xx(transactional_db, tmp_path: Path):
    acme = _kit("acme")
    _, policy_token = token_issue(tenant=acme.tenant, name="admin", actor="test", scope="policy")
    log = tmp_path / "gunicorn.log"
    with gunicorn(workers=2, log=log, MULTI_TENANT="true") as server, requests.Session() as session:
        # Something to find: decided PCS, a sealed checkpoint, a draft policy.
        pcs = [make_pcs(acme.signer, epoch=i) for i in range(1, 4)]
        for item in pcs:
            answer = session.post(
                f"{server.url}/v1/pcs/submit",
                data=json.dumps(item),
                headers={"Content-Type": "application/json", "X-Tenant-Id": "acme"},
            )
            assert answer.status_code == 200, answer.text
        assert checkpoint_seal(tenant=acme.tenant) is not None
        draft = {"name": "draft", "version": "1.2.0", "params": {}, "rules": []}
        created = session.post(
            f"{server.url}/v1/policies", json=draft, headers={"Authorization": f"Bearer {policy_token}"}
        )
        assert created.status_code == 201, created.text
        known_ids = {"pcs_id": pcs[0]["pcs_id"], "tenant": "acme", "version": "1.2.0"}

        schema = schemathesis.openapi.from_url(f"{server.url}/v1/openapi.json", config=schemathesis.Config())
        cases: Counter[str] = Counter()
        statuses: Counter[tuple[str, int]] = Counter()
        failures: list[str] = []

        for result in schema.get_all_operations():
            operation = result.ok()
            label = f"{operation.method.upper()} {operation.path}"
            if label in EXCLUDED_OPERATIONS:
                continue
            token = policy_token if operation.path.startswith("/v1/policies") else acme.token
            headers = {"Authorization": f"Bearer {token}"}
            path_names = {parameter.name for parameter in operation.path_parameters}
            known = {name: value for name, value in known_ids.items() if name in path_names}
            modes = [operation.as_strategy(GenerationMode.POSITIVE)]
            if known:
                modes.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known))
            if operation.path_parameters or operation.query or operation.headers or operation.body:
                modes.append(operation.as_strategy(GenerationMode.NEGATIVE))

            run = Run(label, server.url, session, headers, cases, statuses, failures)
            default_path = None
            for case in schema.iter_coverage_cases(
                operation,
                generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                generation_config=schema.config.generation_for(operation=operation),
            ):
                # The first case holds the default path values; a case that keeps them tests something
                # else (a query, a body, a method), so aim it at the tenant's real ids.
                default_path = case.path_parameters if default_path is None else default_path
                if known and case.path_parameters == default_path:
                    case.path_parameters = {**case.path_parameters, **known}
                run.exercise(case)
            fuzz(run, st.one_of(modes))

    total = sum(cases.values())
    summary = "\n".join(f"  {label}: {count} cases" for label, count in sorted(cases.items()))
    seen = ", ".join(f"{label} {status}×{n}" for (label, status), n in sorted(statuses.items()))
    print(f"\nschemathesis: {total} cases over {len(cases)} operations\n{summary}\nstatuses: {seen}")
    server_errors = [line for line in log.read_text(errors="replace").splitlines() if "Traceback" in line]
    assert not failures, "\n\n".join(failures[:20]) + f"\n\n{len(failures)} failing cases of {total}"
    assert not server_errors, log.read_text(errors="replace")[-5000:]
    assert len(cases) >= 15 - len(EXCLUDED_OPERATIONS)


def test_every_operation_documents_its_refusals_and_the_submit_body_is_required(api):
    schema = api.get("/v1/openapi.json").json()
    submit = schema["paths"]["/v1/pcs/submit"]["post"]
    assert submit["requestBody"]["required"] is True
    assert set(submit["responses"]) >= {"200", "202", "400", "401", "409", "413", "422", "429", "503"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert statuses - {"200", "201", "202", "204"}, f"{method.upper()} {path} lists no refusal"
