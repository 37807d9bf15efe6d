"""Reading point clouds for ``flk-agent compute``: CSV, NPY or JSONL."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def load_points(path: str | Path) -> np.ndarray:
    """An n×d float array from ``.csv`` (numbers, optional header), ``.npy`` or ``.jsonl``.

    JSONL lines are either arrays of numbers or objects with a ``point`` array.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        points = np.load(path, allow_pickle=False)
    elif suffix == ".csv":
        text = path.read_text(encoding="utf-8").splitlines()
        rows = [line for line in text if line.strip()]
        try:
            float(rows[0].split(",")[0])
        except (ValueError, IndexError):
            rows = rows[1:]  # a header line
        points = np.array([[float(v) for v in row.split(",")] for row in rows])
    elif suffix in (".jsonl", ".ndjson"):
        points = np.array(
            [point_of(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
        )
    else:
        raise ValueError(f"{path}: unknown point format {suffix!r} (use .csv, .npy or .jsonl)")
    points = np.asarray(points, dtype=np.float64)
    if points.ndim == 1:
        points = points[:, None]
    if points.ndim != 2 or points.shape[0] == 0:
        raise ValueError(f"{path}: expected a non-empty n×d table of numbers")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{path}: points must be finite numbers")
    return points


def point_of(value: object) -> list[float]:
    """The coordinates of one JSON event: a list, or an object's ``point`` list."""
    coords = value.get("point") if isinstance(value, dict) else value
    if not isinstance(coords, list) or not coords:
        raise ValueError("an event needs a non-empty 'point' array of numbers")
    return [float(c) for c in coords]
