"""Anchoring checkpoints to a write-once directory."""

from __future__ import annotations

import json
import stat

import pytest
from django.utils import timezone

from apps.audit.anchoring import AnchorConflict, checkpoint_anchor
from apps.audit.checkpoints import checkpoint_seal
from apps.audit.models import Anchor
from apps.pcs.services import pcs_ingest
from tasks.audit import anchor_checkpoints


@pytest.fixture
def sealed(db, tenant, pcs_factory, settings, tmp_path):
    settings.AUDIT_ANCHOR_DIR = tmp_path / "anchors"
    pcs_ingest(body=json.dumps(pcs_factory(epoch=1)).encode(), tenant_header=None, received_at=timezone.now())
    return checkpoint_seal(tenant=tenant)


def test_a_checkpoint_is_written_once_read_only_and_recorded(sealed, settings):
    assert anchor_checkpoints() == {"anchored": 1}
    anchor = Anchor.objects.get(checkpoint=sealed)
    path = settings.AUDIT_ANCHOR_DIR / "default" / f"{sealed.tree_size}.note"
    assert anchor.reference == str(path) and path.read_text() == sealed.note
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert anchor_checkpoints() == {"anchored": 0}  # a second run changes nothing


def test_a_different_note_at_the_same_size_is_refused(sealed, settings):
    path = settings.AUDIT_ANCHOR_DIR / "default" / f"{sealed.tree_size}.note"
    path.parent.mkdir(parents=True)
    path.write_text("another tree of the same size\n")
    with pytest.raises(AnchorConflict):
        checkpoint_anchor(checkpoint=sealed)
    assert not Anchor.objects.exists()
