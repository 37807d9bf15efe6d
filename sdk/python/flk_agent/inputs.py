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
        points = np.array(_csv_rows(path))
    elif suffix in (".jsonl", ".ndjson"):
        points = np.array(_jsonl_rows(path))
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


def _csv_rows(path: Path) -> list[list[float]]:
    """The rows of a CSV of numbers (a first line that is not numbers is a header); errors name the line."""
    numbered = [(n, line) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)]
    numbered = [(n, line) for n, line in numbered if line.strip()]
    if numbered:
        try:
            float(numbered[0][1].split(",")[0])
        except ValueError:
            numbered = numbered[1:]  # a header line
    rows: list[list[float]] = []
    for number, line in numbered:
        cells = line.split(",")
        try:
            row = [float(cell) for cell in cells]
        except ValueError:
            bad = next(cell for cell in cells if not _is_number(cell))
            raise ValueError(f"{path}: line {number}: {bad.strip()!r} is not a number") from None
        if rows and len(row) != len(rows[0]):
            raise ValueError(
                f"{path}: line {number}: {len(row)} value{'s' * (len(row) != 1)}, "
                f"but the rows before have {len(rows[0])}"
            )
        rows.append(row)
    return rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _jsonl_rows(path: Path) -> list[list[float]]:
    """The points of a JSONL file, one per non-empty line; errors name the line."""
    rows: list[list[float]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = point_of(json.loads(line))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: line {number}: {exc}") from None
        if rows and len(row) != len(rows[0]):
            raise ValueError(
                f"{path}: line {number}: {len(row)} coordinates, but the points before have {len(rows[0])}"
            )
        rows.append(row)
    return rows


def point_of(value: object) -> list[float]:
    """The coordinates of one JSON event: a list, or an object's ``point`` list."""
    coords = value.get("point") if isinstance(value, dict) else value
    if not isinstance(coords, list) or not coords:
        raise ValueError("an event needs a non-empty 'point' array of numbers")
    return [float(c) for c in coords]
