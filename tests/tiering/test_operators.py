"""What an operator sees: the admin's tiers page, `manage.py tier status`, the scrape-time gauges."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from apps.tiering.metrics import TierCollector
from apps.tiering.services import tier_demote
from tests.tiering.conftest import decide


def test_the_tiers_page_status_and_gauges_show_records_per_tier(
    admin_client, tenant, pcs_factory, cold_bucket
):
    decide(pcs_factory, range(3))
    assert tier_demote(max_batches=1).records == 3

    page = admin_client.get("/admin/tiering/demotionbatch/tiers/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'class="cold-records">3<' in html and 'class="warm-records">0<' in html and "deleted" in html

    out = StringIO()
    call_command("tier", "status", stdout=out)
    line = next(line for line in out.getvalue().splitlines() if line.startswith("default"))
    assert line.split()[1:3] == ["3", "0"] and line.split()[4] == "3"  # hot answers, warm, cold

    samples = {
        (s.name, tuple(s.labels.items())): s.value for m in TierCollector().collect() for s in m.samples
    }
    assert samples[("tier_records", (("tier", "cold"),))] == 3
    assert samples[("tier_demotion_lag_seconds", ())] == 0
