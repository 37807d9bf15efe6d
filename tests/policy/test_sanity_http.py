"""Every sanity check of DESIGN §6, through the HTTP API: a physically impossible PCS is refused (400)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.pcs.models import PcsRecord
from tests.conftest import submit

SANITY = {
    "scales-increasing": ({"scales": [4, 2, 8, 16, 32]}, "scales", "strictly increasing"),
    "n_j-monotone": ({"N_j": {"2": 4, "4": 3, "8": 9, "16": 17, "32": 31}}, "N_j", "must not decrease"),
    "n_j-bounded": ({"N_j": {"2": 5, "4": 6, "8": 9, "16": 17, "32": 31}}, "N_j.2", "exceeds 2^2 cells"),
    "v_star-unit-norm": ({"v_star": [0.8, 0.8]}, "v_star", "unit norm"),
    "clock-skew": (
        {"sent_at": (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "sent_at",
        "clock skew",
    ),
    "d_hat-within-dimension": ({"D_hat": 2.5}, "D_hat", "exceeds the 2 dimensions"),
    "coh_star-at-least-one-bin": ({"coh_star": 0.01}, "coh_star", "below 0.05"),
}


@pytest.mark.parametrize(("overrides", "field", "detail"), SANITY.values(), ids=SANITY.keys())
def test_each_sanity_check_refuses_an_impossible_pcs(api, pcs_factory, overrides, field, detail):
    response = submit(api, pcs_factory(epoch=1, **overrides))  # signed as claimed: only sanity is wrong
    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["error"], body["field"]) == ("sanity_failed", field)
    assert detail in body["detail"]
    assert not PcsRecord.objects.exists()


def test_an_accepted_pcs_lists_every_check_that_ran(api, pcs_factory):
    body = submit(api, pcs_factory(epoch=1)).json()
    verdicts = {c["name"]: c["verdict"] for c in body["checks"]}
    for name in (
        "signature",
        "scales_increasing",
        "n_j_monotone",
        "n_j_bounded",
        "v_star_unit_norm",
        "d_hat_within_dimension",
        "coh_star_at_least_one_bin",
        "clock_skew",
        "d_hat_tolerance",
        "regime_match",
        "budget_tolerance",
        "not_degraded",
        "anomaly",
    ):
        assert verdicts.pop(name) == "pass", name
    assert verdicts == {}
    assert 0 <= body["anomaly_score"] <= 1
