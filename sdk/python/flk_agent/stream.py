"""Windowing a JSONL event stream into epochs, each turned into one signed PCS.

Windows are deterministic so that a restarted agent recomputes exactly the PCS it would have sent:
by count, window k holds events k·N … k·N+N−1 and is epoch ``epoch_start + k``; by time, an event's
``ts`` (seconds) decides its epoch, ``floor(ts / seconds)``, so events need a ``ts``. The last epoch
put into the outbox is checkpointed beside it, and a restart skips the windows already there.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flk_agent.builder import build_pcs
from flk_agent.inputs import point_of
from flk_agent.signals import DEFAULT_SCALES
from flk_agent.signing import Signer


@dataclass(frozen=True)
class Window:
    """One epoch's events: the raw lines (Merkle leaves) and their points."""

    epoch: int
    lines: list[bytes]
    points: list[list[float]]


def _parse(line: str) -> tuple[bytes, dict[str, Any]] | None:
    text = line.strip()
    if not text:
        return None
    event = json.loads(text)
    if not isinstance(event, dict):
        raise ValueError("each event must be a JSON object")
    return text.encode(), event


def windows_by_count(lines: Iterable[str], *, count: int, epoch_start: int = 1) -> Iterator[Window]:
    """Consecutive windows of ``count`` events; a last, shorter window is emitted at end of input."""
    if count < 1:
        raise ValueError("window count must be at least 1")
    epoch, raw, points = epoch_start, [], []
    for line in lines:
        parsed = _parse(line)
        if parsed is None:
            continue
        raw.append(parsed[0])
        points.append(point_of(parsed[1]))
        if len(raw) == count:
            yield Window(epoch, raw, points)
            epoch, raw, points = epoch + 1, [], []
    if raw:
        yield Window(epoch, raw, points)


def windows_by_time(lines: Iterable[str], *, seconds: float) -> Iterator[Window]:
    """Windows of events whose ``ts`` falls in the same ``seconds``-long bucket; events in time order."""
    if seconds <= 0:
        raise ValueError("window seconds must be positive")
    current, raw, points = None, [], []
    for line in lines:
        parsed = _parse(line)
        if parsed is None:
            continue
        ts = parsed[1].get("ts")
        if not isinstance(ts, int | float):
            raise ValueError("time windows need a numeric 'ts' (seconds) in every event")
        epoch = int(ts // seconds)
        if current is not None and epoch != current:
            yield Window(current, raw, points)
            raw, points = [], []
        current = epoch
        raw.append(parsed[0])
        points.append(point_of(parsed[1]))
    if raw and current is not None:
        yield Window(current, raw, points)


def seed_for(shard_id: str, epoch: int) -> int:
    """A deterministic per-window seed, so a recomputed window gives the same PCS."""
    return int.from_bytes(hashlib.sha256(f"{shard_id}|{epoch}".encode()).digest()[:8], "big")


def window_pcs(
    window: Window,
    *,
    shard_id: str,
    signer: Signer,
    scales: tuple[int, ...] = DEFAULT_SCALES,
    vrf_secret_key: bytes | None = None,
) -> dict[str, Any]:
    """The signed PCS of one window: events are the Merkle leaves, their lines the raw data.

    With a VRF key the seed is the VRF's (the same for a recomputed window, as the VRF is
    deterministic); without, it is derived from the shard and epoch.
    """
    return build_pcs(
        points=np.asarray(window.points, dtype=np.float64),
        events=window.lines,
        shard_id=shard_id,
        epoch=window.epoch,
        seed=None if vrf_secret_key else seed_for(shard_id, window.epoch),
        signer=signer,
        scales=scales,
        vrf_secret_key=vrf_secret_key,
    )


class StreamCheckpoint:
    """The last epoch of a shard put into the outbox, kept in a small file beside it."""

    def __init__(self, directory: Path, shard_id: str) -> None:
        digest = hashlib.sha256(shard_id.encode()).hexdigest()[:16]
        self.path = Path(directory) / f"stream-{digest}.json"

    def last_epoch(self) -> int | None:
        """The last epoch recorded, if any."""
        try:
            return int(json.loads(self.path.read_text())["last_epoch"])
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def save(self, epoch: int) -> None:
        """Record ``epoch`` atomically (write, fsync, rename)."""
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            json.dump({"last_epoch": epoch}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
