"""Cold index columns are filled for rows demoted before they existed (migrations 0002 and 0004)."""

from __future__ import annotations

from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apps.tiering.models import ColdRecord
from apps.tiering.services import tier_demote
from tests.tiering.conftest import decide


def _migrate(target: str) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([("tiering", target)])


def test_the_migrations_fill_record_id_status_and_entry_from_the_batches_and_the_audit_log(
    transactional_db, tenant, pcs_factory, cold_bucket
):
    # transactional_db: each migration commits on its own, as under `manage.py migrate`.
    decide(pcs_factory, range(3))
    decide(lambda epoch: pcs_factory(epoch=epoch, D_hat=0.2), range(3, 5))  # escalated
    assert tier_demote().records == 5
    demoted = sorted(ColdRecord.objects.values_list("pcs_id", "record_id", "status_code", "audit_entry_id"))
    assert sorted(status for _, _, status, _ in demoted) == [200, 200, 200, 202, 202]
    assert all(entry is not None for *_, entry in demoted)

    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("tiering")[0][1]
    _migrate("0001_initial")  # the columns are dropped: rows as an earlier release demoted them
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM tiering_coldrecord")
            assert cursor.fetchone() == (5,)
    finally:
        _migrate(latest)
    assert (
        sorted(ColdRecord.objects.values_list("pcs_id", "record_id", "status_code", "audit_entry_id"))
        == demoted
    )
