"""Audit tasks: seal and anchor tree heads of every tenant's log; re-verify decisions off the hot path."""

from __future__ import annotations

from django.db import DatabaseError

from apps.audit.anchoring import anchor_pending
from apps.audit.checkpoints import checkpoint_seal
from apps.audit.reverify import audit_pending
from apps.tenants.models import Tenant
from tasks.base import flk_task


@flk_task(queue="anchoring", name="tasks.audit.seal_checkpoints")
def seal_checkpoints() -> dict[str, int]:
    """Sign a checkpoint for each tenant whose log grew since its last one. Safe to run twice."""
    sealed = sum(1 for tenant in Tenant.objects.all() if checkpoint_seal(tenant=tenant) is not None)
    return {"sealed": sealed}


@flk_task(queue="anchoring", name="tasks.audit.anchor_checkpoints")
def anchor_checkpoints() -> dict[str, int]:
    """Write sealed checkpoints that have no anchor to write-once storage. Safe to run twice."""
    return {"anchored": anchor_pending()}


@flk_task(
    queue="audits",
    name="tasks.audit.async_audit",
    autoretry_for=(DatabaseError,),
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=5,
)
def async_audit() -> dict[str, int]:
    """Re-verify decisions logged since the last run, off the hot path. Safe to run twice."""
    return audit_pending()
