"""What the object benchmarks (``objects_*.py``) share: an instancer plugin built by name with its
default keys, and where an instance segmentation loses against the truth: merges, splits, misses,
false detections and the Boundary IoU of the objects it matches.

Every outlined (truth) object without a prediction at IoU > 0.5 is counted once, in the first of:

* ``missed``: predicted objects cover less than half of its pixels;
* ``merged``: the predicted object overlapping it most also covers half or more of another truth object;
* ``split``: two or more predicted objects each cover a fifth of it or more;
* ``poorly_outlined``: the rest (found, but the outline is too far off for IoU > 0.5).

A predicted object without a match is a ``false_detection`` when less than half of its pixels lie
on outlined nuclei (otherwise it is the other half of a merge, a split or a poor outline).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def build_instancer(name: str, classes: Any, **keys: Any) -> Callable[[np.ndarray, np.ndarray], Any]:
    """The ``name`` instancer plugin as ``[instances] name = ...`` builds it, its keys at their
    defaults unless given in ``keys``."""
    from segkit.plugins import get_registry
    from segkit.specs import InstancerRequest

    spec = get_registry().get("instancer", name).spec
    options = {option.name: option.default for option in spec.options} | keys
    return spec.build(InstancerRequest(options, classes))


def overlaps(truth: np.ndarray, predicted: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """``(T + 1, P + 1)`` pixel counts of every truth id against every predicted id (0 = none)."""
    rows, cols = shape or (int(truth.max()) + 1, int(predicted.max()) + 1)
    pairs = truth.astype(np.int64).ravel() * cols + predicted.astype(np.int64).ravel()
    return np.bincount(pairs, minlength=rows * cols).reshape(rows, cols)


def matches(counts: np.ndarray) -> np.ndarray:
    """``(k, 2)`` (truth id, predicted id) pairs with IoU > 0.5 (unique by construction)."""
    areas_t, areas_p = counts.sum(axis=1), counts.sum(axis=0)
    union = areas_t[:, None] + areas_p[None, :] - counts
    iou = np.divide(counts, union, out=np.zeros(counts.shape), where=union > 0)
    iou[0, :] = iou[:, 0] = 0
    return np.argwhere(iou > 0.5)


def losses(truth: np.ndarray, predicted: np.ndarray) -> dict[str, int]:
    """Counts of the module docstring's kinds, plus ``truth``, ``matched`` and ``kept_predicted``."""
    counts = overlaps(truth, predicted)
    matched = matches(counts)
    kinds = dict.fromkeys(("missed", "merged", "split", "poorly_outlined"), 0)
    areas_t, areas_p = counts.sum(axis=1), counts.sum(axis=0)
    for t in sorted(set(range(1, counts.shape[0])) - set(matched[:, 0].tolist())):
        kinds[_kind(counts, t, areas_t)] += 1
    unmatched_p = sorted(set(range(1, counts.shape[1])) - set(matched[:, 1].tolist()))
    on_nuclei = counts[1:, :].sum(axis=0)
    false = sum(1 for p in unmatched_p if areas_p[p] and on_nuclei[p] < 0.5 * areas_p[p])
    return {"truth": counts.shape[0] - 1, "matched": len(matched), **kinds,
            "kept_predicted": int((areas_p[1:] > 0).sum()), "false_detections": false}


def _kind(counts: np.ndarray, t: int, areas_t: np.ndarray) -> str:
    row = counts[t, 1:]
    if row.sum() < 0.5 * areas_t[t]:
        return "missed"
    main = int(np.argmax(row)) + 1
    others = np.delete(np.arange(counts.shape[0]), [0, t])
    if np.any(counts[others, main] >= 0.5 * areas_t[others]):
        return "merged"
    return "split" if np.count_nonzero(row >= 0.2 * areas_t[t]) >= 2 else "poorly_outlined"


def boundary_band(labels: np.ndarray, width: int) -> np.ndarray:
    """``labels`` kept only within ``width`` px of its object's edge (inside it), the band
    Boundary IoU compares (Cheng et al., CVPR 2021)."""
    from scipy import ndimage

    footprint = np.ones((2 * width + 1, 2 * width + 1), bool)
    edge = (ndimage.minimum_filter(labels, footprint=footprint, mode="constant") != labels) | \
        (ndimage.maximum_filter(labels, footprint=footprint, mode="constant") != labels)
    return np.where(edge & (labels > 0), labels, 0)


def boundary_iou(truth: np.ndarray, predicted: np.ndarray, width: int = 2) -> float:
    """Mean Boundary IoU of the matched (IoU > 0.5) pairs; NaN when nothing matches."""
    counts = overlaps(truth, predicted)
    matched = matches(counts)
    if not len(matched):
        return float("nan")
    bands = overlaps(boundary_band(truth, width), boundary_band(predicted, width), counts.shape)
    inner = bands[matched[:, 0], matched[:, 1]]
    union = bands.sum(axis=1)[matched[:, 0]] + bands.sum(axis=0)[matched[:, 1]] - inner
    return float(np.mean(inner / np.maximum(union, 1)))
