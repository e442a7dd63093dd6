"""Object scores of nuclei: detection precision, recall and F1, AJI, and panoptic quality (DQ, SQ, PQ).

The definitions are the field's, so the figures compare with published ones:

- **Matching.** A truth object and a predicted object match when their IoU is above ``threshold``
  (default 0.5). Above 0.5 a truth object can overlap at most one prediction that much, so the
  matching is unique. Below 0.5 it comes from an optimal assignment
  (``scipy.optimize.linear_sum_assignment``): as many matches as possible, and among matchings of
  that size the one with the largest sum of matched IoU, as ``stardist.matching.matching`` does.
- **Detection.** ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)``,
  ``f1 = 2 tp / (2 tp + fp + fn)``.
- **Panoptic quality** (Kirillov et al. 2019). ``dq = tp / (tp + fp/2 + fn/2)`` (equal to F1),
  ``sq = iou_sum / tp`` (mean IoU of the matches), ``pq = iou_sum / (tp + fp/2 + fn/2)``. That is
  ``dq * sq`` whenever there is a match, and 0 (not undefined) when there are objects but no match.
- **AJI** (Kumar et al. 2017). Each truth object is paired with the prediction of largest IoU with
  it (the smaller id on a tie); the intersections of those pairs over their unions, with the truth
  objects that overlap nothing and the predictions paired with no truth object added to the union.
- **Undefined.** A ratio of 0 to 0 is NaN (nothing to score), never 0 or 1.

**Ignored pixels** (the mask's ignore label) count nowhere: an object with more than half its
pixels ignored is dropped, on both sides, and the ignored pixels of the objects that stay are
cleared from both label images before matching. So an object 60% in the ignore region is neither
a miss nor a false positive, and one 40% in is scored on its other 60%.

**Overall and per class.** ``ImageScores.overall`` matches truth and predicted objects whatever
their classes (how well nuclei are found and outlined); ``by_class[c]`` matches only the truth
and predicted objects of class ``c`` to each other (so a nucleus of the wrong class is a miss of
its class and a false positive of the other).

**Split and image figures.** :func:`object_figures` gives both kinds. The split-level figures add
the counts of every image first (CoNIC's dataset-level style: a split's PQ is not a mean of
images' PQs); ``mpq`` is the mean over classes of the split-level ``pq_<class>`` (CoNIC's mPQ+).
``<figure>_image_mean`` is the mean over the images where that figure is defined;
``mpq_image_mean`` is PanNuke's per-image mPQ: per image, the mean ``pq_<class>`` over the classes
that image's truth holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np

from segkit.classes import safe_names

#: The figures of one :class:`ObjectScores`, in the order tables show them.
FIGURES = ("object_precision", "object_recall", "object_f1", "aji", "dq", "sq", "pq")


@dataclass(frozen=True)
class ObjectScores:
    """Counts of one matching: ``+`` adds them, so a split's figures come from summed counts."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    #: the IoU of every match, summed
    iou_sum: float = 0.0
    #: AJI's numerator and denominator, in pixels
    aji_intersection: int = 0
    aji_union: int = 0

    def __add__(self, other: ObjectScores) -> ObjectScores:
        return ObjectScores(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def dq(self) -> float:
        return _ratio(self.tp, self._panoptic_denominator)

    @property
    def sq(self) -> float:
        return _ratio(self.iou_sum, self.tp)

    @property
    def pq(self) -> float:
        return _ratio(self.iou_sum, self._panoptic_denominator)

    @property
    def aji(self) -> float:
        return _ratio(self.aji_intersection, self.aji_union)

    @property
    def _panoptic_denominator(self) -> float:
        return self.tp + (self.fp + self.fn) / 2

    def figures(self) -> dict[str, float]:
        """The :data:`FIGURES` of these counts, by name."""
        values = (self.precision, self.recall, self.f1, self.aji, self.dq, self.sq, self.pq)
        return dict(zip(FIGURES, values))


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / denominator if denominator else math.nan


@dataclass(frozen=True)
class ImageScores:
    """One image's scores: all objects whatever their class, and each class's objects alone."""

    overall: ObjectScores
    by_class: dict[int, ObjectScores]


@dataclass(frozen=True)
class _Overlaps:
    """Pixel counts of a truth and a predicted label image: each object's, and each overlapping pair's.

    Areas are indexed by object id (an id with area 0 is no object); the pairs are the
    (truth id, predicted id) that share at least one pixel.
    """

    truth_areas: np.ndarray
    predicted_areas: np.ndarray
    truth_ids: np.ndarray
    predicted_ids: np.ndarray
    intersections: np.ndarray

    @property
    def ious(self) -> np.ndarray:
        unions = self.truth_areas[self.truth_ids] + self.predicted_areas[self.predicted_ids] - self.intersections
        ious: np.ndarray = self.intersections / unions
        return ious

    def restricted(self, truth_kept: np.ndarray, predicted_kept: np.ndarray) -> _Overlaps:
        """The same counts with only the objects whose ids are ``True`` in the two masks."""
        pairs = truth_kept[self.truth_ids] & predicted_kept[self.predicted_ids]
        return _Overlaps(self.truth_areas * truth_kept, self.predicted_areas * predicted_kept,
                         self.truth_ids[pairs], self.predicted_ids[pairs], self.intersections[pairs])


def _overlaps(truth: np.ndarray, predicted: np.ndarray, truth_ids: int = 0, predicted_ids: int = 0) -> _Overlaps:
    """The contingency of two label images, built once from the pixels both label (ids up to the counts given)."""
    truth, predicted = truth.ravel(), predicted.ravel()
    truth_areas = np.bincount(truth, minlength=truth_ids + 1).astype(np.int64)
    predicted_areas = np.bincount(predicted, minlength=predicted_ids + 1).astype(np.int64)
    truth_areas[0] = predicted_areas[0] = 0
    both = (truth > 0) & (predicted > 0)
    width = predicted_areas.size
    pair_keys, intersections = np.unique(truth[both].astype(np.int64) * width + predicted[both], return_counts=True)
    return _Overlaps(truth_areas, predicted_areas, pair_keys // width, pair_keys % width, intersections)


def _matched_pairs(overlaps: _Overlaps, threshold: float) -> np.ndarray:
    """Indices of the pairs that match: IoU above ``threshold``, one partner each."""
    candidates = np.flatnonzero(overlaps.ious > threshold)
    if threshold >= 0.5:
        return candidates
    chosen = _optimal_assignment(overlaps.truth_ids[candidates], overlaps.predicted_ids[candidates],
                                 overlaps.ious[candidates])
    return candidates[chosen]


def _optimal_assignment(truth_ids: np.ndarray, predicted_ids: np.ndarray, ious: np.ndarray) -> np.ndarray:
    """Which of the candidate pairs to keep so each object has one partner at most (see the module doc).

    Objects compete only within a connected group of candidate pairs, so each group is assigned
    on its own: a lone pair is kept as it is, and no dense all-by-all matrix is ever built.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    truth_nodes = np.unique(truth_ids, return_inverse=True)[1]
    predicted_nodes = np.unique(predicted_ids, return_inverse=True)[1]
    offset = int(truth_nodes.max(initial=-1)) + 1
    size = offset + int(predicted_nodes.max(initial=-1)) + 1
    graph = coo_matrix((np.ones(ious.size), (truth_nodes, offset + predicted_nodes)), shape=(size, size))
    group_of_pair = connected_components(graph, directed=False)[1][truth_nodes]
    pairs_per_group = np.bincount(group_of_pair)
    kept = [np.flatnonzero(pairs_per_group[group_of_pair] == 1)]
    members_by_group = np.split(np.argsort(group_of_pair, kind="stable"), np.cumsum(pairs_per_group)[:-1])
    for members in (m for m in members_by_group if m.size > 1):
        kept.append(members[_assign(truth_ids[members], predicted_ids[members], ious[members])])
    return np.sort(np.concatenate(kept))


def _assign(truth_ids: np.ndarray, predicted_ids: np.ndarray, ious: np.ndarray) -> np.ndarray:
    """The pairs of one group that the assignment keeps: most matches first, then the largest IoU sum."""
    from scipy.optimize import linear_sum_assignment

    rows = np.unique(truth_ids, return_inverse=True)[1]
    columns = np.unique(predicted_ids, return_inverse=True)[1]
    shape = (int(rows.max()) + 1, int(columns.max()) + 1)
    # A match is worth 1 and its IoU less than 1/(2 min(shape)): all the IoUs of a matching add up
    # to under 1/2, so they only choose between matchings with the same number of matches.
    gain = np.zeros(shape)
    gain[rows, columns] = 1 + ious / (2 * min(shape))
    pair_at = np.full(shape, -1)
    pair_at[rows, columns] = np.arange(ious.size)
    picked = pair_at[linear_sum_assignment(gain, maximize=True)]
    kept: np.ndarray = picked[picked >= 0]
    return kept


def _aji_counts(overlaps: _Overlaps) -> tuple[int, int]:
    """AJI's intersection and union in pixels (Kumar et al. 2017; see the module doc)."""
    ious = overlaps.ious
    # Sorted by truth id, then largest IoU, then smallest predicted id: each truth id's first pair is its best.
    order = np.lexsort((overlaps.predicted_ids, -ious, overlaps.truth_ids))
    sorted_truth = overlaps.truth_ids[order]
    best = order[np.r_[True, sorted_truth[1:] != sorted_truth[:-1]]] if order.size else order
    truth_ids, predicted_ids = overlaps.truth_ids[best], overlaps.predicted_ids[best]
    intersection = int(overlaps.intersections[best].sum())
    paired_unions = int((overlaps.truth_areas[truth_ids] + overlaps.predicted_areas[predicted_ids]).sum()) - intersection
    unpaired_truth = int(overlaps.truth_areas.sum() - overlaps.truth_areas[truth_ids].sum())
    unused_predictions = overlaps.predicted_areas.copy()
    unused_predictions[predicted_ids] = 0
    return intersection, paired_unions + unpaired_truth + int(unused_predictions.sum())


def _scores(overlaps: _Overlaps, threshold: float) -> ObjectScores:
    matched = _matched_pairs(overlaps, threshold)
    truth_count = int(np.count_nonzero(overlaps.truth_areas))
    predicted_count = int(np.count_nonzero(overlaps.predicted_areas))
    intersection, union = _aji_counts(overlaps)
    return ObjectScores(tp=matched.size, fp=predicted_count - matched.size, fn=truth_count - matched.size,
                        iou_sum=float(overlaps.ious[matched].sum()), aji_intersection=intersection, aji_union=union)


def _checked_labels(labels: np.ndarray, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if labels.shape != shape or labels.ndim != 2:
        raise ValueError(f"{name} labels are {labels.shape}, not 2-D of shape {shape}")
    if not np.issubdtype(labels.dtype, np.integer) or (labels.size and labels.min() < 0):
        raise ValueError(f"{name} labels must be non-negative integers, not {labels.dtype}")
    return labels


def score_objects(truth: np.ndarray, predicted: np.ndarray, threshold: float = 0.5) -> ObjectScores:
    """Match the objects of two ``(H, W)`` label images (0 = none, any other id an object) and count."""
    shape = truth.shape
    truth, predicted = _checked_labels(truth, "truth", shape), _checked_labels(predicted, "predicted", shape)
    return _scores(_overlaps(_compact(truth), _compact(predicted)), threshold)


def _compact(labels: np.ndarray) -> np.ndarray:
    """Labels whose ids fit an array indexed by id: relabelled 1..N only when the ids run past the pixel count."""
    if not labels.size or int(labels.max()) <= labels.size:
        return labels
    compact: np.ndarray = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)
    return compact if labels.min() == 0 else compact + 1


def drop_mostly_ignored(labels: np.ndarray, ignore: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    """``labels`` without the objects that have more than ``fraction`` of their pixels in ``ignore``."""
    areas = np.bincount(labels.ravel())
    ignored = np.bincount(labels[ignore], minlength=areas.size)
    kept_id = np.arange(areas.size, dtype=labels.dtype)
    kept_id[ignored > fraction * areas] = 0
    kept: np.ndarray = kept_id[labels]
    return kept


def score_image(truth_labels: np.ndarray, truth_classes: np.ndarray, predicted_labels: np.ndarray,
                predicted_classes: np.ndarray, ignore: np.ndarray | None, class_indices: Sequence[int],
                threshold: float = 0.5) -> ImageScores:
    """One image's scores, overall and for each class of ``class_indices``.

    Object ``i`` of either side has id ``i`` in its labels and class ``classes[i - 1]``; ``ignore``
    (``(H, W)`` bool) marks the pixels that count nowhere (the rule is in the module doc).
    """
    shape = truth_labels.shape
    truth = _checked_labels(truth_labels, "truth", shape)
    predicted = _checked_labels(predicted_labels, "predicted", shape)
    truth_class = _class_of_id(truth, truth_classes, "truth")
    predicted_class = _class_of_id(predicted, predicted_classes, "predicted")
    if ignore is not None:
        truth, predicted = _without_ignored(truth, ignore), _without_ignored(predicted, ignore)
    overlaps = _overlaps(truth, predicted, truth_class.size - 1, predicted_class.size - 1)
    by_class = {index: _scores(overlaps.restricted(truth_class == index, predicted_class == index), threshold)
                for index in class_indices}
    return ImageScores(_scores(overlaps, threshold), by_class)


def _class_of_id(labels: np.ndarray, classes: np.ndarray, name: str) -> np.ndarray:
    """The class of each id, index = id (0 for id 0)."""
    if labels.size and int(labels.max()) > len(classes):
        raise ValueError(f"{name} labels hold id {int(labels.max())} but only {len(classes)} classes are given")
    return np.concatenate([[0], np.asarray(classes, dtype=np.int64)])


def _without_ignored(labels: np.ndarray, ignore: np.ndarray) -> np.ndarray:
    if ignore.shape != labels.shape:
        raise ValueError(f"the ignore mask is {ignore.shape}, the labels {labels.shape}")
    kept = drop_mostly_ignored(labels, ignore)
    kept[ignore] = 0
    return kept


def _class_figures(overall: ObjectScores, by_class: Mapping[int, ObjectScores], names: Mapping[int, str],
                   mpq: float) -> dict[str, float]:
    figures = {**overall.figures(), "mpq": mpq}
    for index, scores in by_class.items():
        figures.update({f"{figure}_{names[index]}": value for figure, value in scores.figures().items()})
    return figures


def _figure_names(class_names: Mapping[int, str]) -> dict[int, str]:
    """Class index -> its name in figure names: :func:`segkit.classes.safe_names`, as the pixel metrics use.

    Pass every class of the table (background included) so a repeated name gets the same suffix there.
    """
    indices = sorted(class_names)
    return dict(zip(indices, safe_names([class_names[index] for index in indices])))


def _mean_defined(values: Sequence[float]) -> float:
    defined = [value for value in values if not math.isnan(value)]
    return sum(defined) / len(defined) if defined else math.nan


def image_figures(scores: ImageScores, class_names: Mapping[int, str]) -> dict[str, float]:
    """One image's row: the :data:`FIGURES`, ``mpq`` (PanNuke's: over the classes its truth holds), each class's."""
    present = [c.pq for c in scores.by_class.values() if c.tp + c.fn > 0]
    return _class_figures(scores.overall, scores.by_class, _figure_names(class_names), _mean_defined(present))


def object_figures(images: Sequence[ImageScores], class_names: Mapping[int, str]) -> dict[str, float]:
    """A split's figures from counts summed over its images, then ``<figure>_image_mean`` of each."""
    overall = sum((image.overall for image in images), ObjectScores())
    classes = sorted({index for image in images for index in image.by_class})
    by_class = {index: sum((image.by_class.get(index, ObjectScores()) for image in images), ObjectScores())
                for index in classes}
    mpq = _mean_defined([scores.pq for scores in by_class.values()])
    figures = _class_figures(overall, by_class, _figure_names(class_names), mpq)
    rows = [image_figures(ImageScores(image.overall, {c: image.by_class.get(c, ObjectScores()) for c in classes}),
                          class_names) for image in images]
    figures.update({f"{name}_image_mean": _mean_defined([row[name] for row in rows]) for name in list(figures)})
    return figures
