"""Audit tasks: seal new tree heads of every tenant's log, and anchor them to write-once storage."""

from __future__ import annotations

from apps.audit.anchoring import anchor_pending
from apps.audit.checkpoints import checkpoint_seal
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
