"""Object scores (segkit.objects.scoring) against stardist's matching and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segkit.objects.scoring import (
    ImageScores,
    ObjectScores,
    drop_mostly_ignored,
    image_figures,
    object_figures,
    score_image,
    score_objects,
)


def _disc_labels(rng: np.random.Generator, centres: np.ndarray, radii: np.ndarray, size: int = 96) -> np.ndarray:
    """Discs painted in order with ids 1..N (a later disc covers an earlier one where they overlap)."""
    rows, columns = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.int32)
    for object_id, ((row, column), radius) in enumerate(zip(centres, radii), start=1):
        labels[(rows - row) ** 2 + (columns - column) ** 2 <= radius**2] = object_id
    return labels


def _random_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Truth discs, and a prediction that moves, resizes, drops, splits some of them and adds others."""
    rng = np.random.default_rng(seed)
    count = 40
    centres = rng.uniform(0, 96, (count, 2))
    radii = rng.uniform(3, 9, count)
    truth = _disc_labels(rng, centres, radii)
    kept = rng.random(count) > 0.15
    moved = centres[kept] + rng.normal(0, 2.0, (int(kept.sum()), 2))
    resized = radii[kept] * rng.uniform(0.7, 1.3, int(kept.sum()))
    extra = 6
    predicted = _disc_labels(rng, np.concatenate([moved, rng.uniform(0, 96, (extra, 2))]),
                             np.concatenate([resized, rng.uniform(3, 9, extra)]))
    # a split: the right part of every third disc gets an id of its own, so at IoU 0.3 both halves
    # may compete for one truth object (what the assignment is for)
    columns = np.mgrid[:96, :96][1]
    for object_id, (_, column) in list(enumerate(moved, start=1))[::3]:
        predicted[(predicted == object_id) & (columns > column + rng.uniform(-2, 2))] = count + extra + object_id
    # ids far from 1..N, so neither side relies on consecutive ids
    predicted = np.where(predicted > 0, predicted * 7 + 1000, 0).astype(np.int32)
    return truth, predicted


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.3])
def test_counts_and_figures_equal_stardist_matching(seed: int, threshold: float) -> None:
    from stardist.matching import matching

    truth, predicted = _random_pair(seed)
    ours = score_objects(truth, predicted, threshold)
    # stardist matches at IoU >= threshold, the field (and segkit) at IoU > threshold, which keeps
    # matches at 0.5 unique; random discs do meet exactly 0.5 (seed 0 has 31/62 and 89/178). Its IoUs
    # are float32, so it is asked for the next float32 above the threshold: ">=" that is ">".
    above = float(np.nextafter(np.float32(threshold), np.float32(1)))
    theirs = matching(truth, predicted, thresh=above)
    assert (ours.tp, ours.fp, ours.fn) == (theirs.tp, theirs.fp, theirs.fn)
    assert 0 < ours.tp and 0 < ours.fp and 0 < ours.fn  # the case is not trivial
    assert ours.precision == pytest.approx(theirs.precision)
    assert ours.recall == pytest.approx(theirs.recall)
    assert ours.f1 == pytest.approx(theirs.f1)
    assert ours.dq == pytest.approx(theirs.f1)
    assert ours.sq == pytest.approx(theirs.mean_matched_score, rel=1e-6)
    assert ours.pq == pytest.approx(theirs.panoptic_quality, rel=1e-6)
    assert ours.pq == pytest.approx(ours.dq * ours.sq)


def test_the_assignment_below_one_half_keeps_the_most_matches() -> None:
    from stardist.matching import matching

    # 1-D objects: truth 1 = columns 10-19, truth 2 = 20-29; prediction B = 8-13, A = 14-24.
    # IoU(1, A) = 6/15 = 0.4, IoU(1, B) = 4/12 = 0.33, IoU(2, A) = 5/16 = 0.31, 2 and B do not touch.
    # Pairing by largest IoU takes 1-A and leaves 2 and B alone; the assignment pairs 1-B and 2-A.
    truth = np.zeros((1, 40), np.int32)
    predicted = np.zeros((1, 40), np.int32)
    truth[0, 10:20], truth[0, 20:30] = 1, 2
    predicted[0, 8:14], predicted[0, 14:25] = 5, 6
    ours = score_objects(truth, predicted, threshold=0.3)
    theirs = matching(truth, predicted, thresh=0.3)
    assert (ours.tp, ours.fp, ours.fn) == (theirs.tp, theirs.fp, theirs.fn) == (2, 0, 0)
    assert ours.iou_sum == pytest.approx(4 / 12 + 5 / 16)
    assert ours.sq == pytest.approx(theirs.mean_matched_score, rel=1e-6)


def _squares(*boxes: tuple[int, int, int, int], size: int = 12) -> np.ndarray:
    labels = np.zeros((size, size), np.int32)
    for object_id, (top, left, bottom, right) in enumerate(boxes, start=1):
        labels[top:bottom, left:right] = object_id
    return labels


def test_identical_images_score_one() -> None:
    labels = _squares((0, 0, 4, 4), (6, 6, 10, 11))
    scores = score_objects(labels, labels)
    assert (scores.tp, scores.fp, scores.fn) == (2, 0, 0)
    assert [scores.precision, scores.recall, scores.f1, scores.dq, scores.sq, scores.pq, scores.aji] == [1.0] * 7
    # ids far past the pixel count (relabelled before counting) score the same
    assert score_objects(labels * 10**8, labels) == scores
    full = labels + 10**8  # no background at all: three objects, one of them the rest of the image
    assert score_objects(full, labels + 1) == ObjectScores(3, 0, 0, 3.0, full.size, full.size)


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_empty_truth_and_empty_prediction(threshold: float) -> None:
    labels = _squares((0, 0, 4, 4), (6, 6, 10, 11))
    empty = np.zeros_like(labels)
    no_truth = score_objects(empty, labels, threshold)
    assert (no_truth.tp, no_truth.fp, no_truth.fn) == (0, 2, 0)
    assert no_truth.precision == 0.0 and no_truth.f1 == 0.0 and no_truth.pq == 0.0 and no_truth.aji == 0.0
    assert math.isnan(no_truth.recall) and math.isnan(no_truth.sq)
    no_prediction = score_objects(labels, empty, threshold)
    assert (no_prediction.tp, no_prediction.fp, no_prediction.fn) == (0, 0, 2)
    assert no_prediction.recall == 0.0 and no_prediction.pq == 0.0 and no_prediction.aji == 0.0
    assert math.isnan(no_prediction.precision)
    nothing = score_objects(empty, empty, threshold)
    assert all(math.isnan(value) for value in nothing.figures().values())


def test_one_split_object() -> None:
    # truth: one 4x10 object (40 px); prediction: its left 4x6 (24 px) and right 4x4 (16 px)
    truth = _squares((0, 0, 4, 10))
    predicted = _squares((0, 0, 4, 6), (0, 6, 4, 10))
    scores = score_objects(truth, predicted)
    assert (scores.tp, scores.fp, scores.fn) == (1, 1, 0)
    assert scores.iou_sum == pytest.approx(24 / 40)
    assert scores.pq == pytest.approx((24 / 40) / (1 + 0.5))
    # AJI: truth pairs with the left part (IoU 24/40): I = 24, U = 40; the right part is unused: U += 16
    assert (scores.aji_intersection, scores.aji_union) == (24, 56)
    assert scores.aji == pytest.approx(24 / 56)


def test_one_merged_object() -> None:
    # truth: two objects 4x6 (24 px) and 4x4 (16 px) side by side; prediction: one 4x10 over both
    truth = _squares((0, 0, 4, 6), (0, 6, 4, 10))
    predicted = _squares((0, 0, 4, 10))
    scores = score_objects(truth, predicted)
    assert (scores.tp, scores.fp, scores.fn) == (1, 0, 1)
    assert scores.sq == pytest.approx(24 / 40)
    # AJI: both truths pair with the merge: I = 24 + 16, U = 40 + 40 (the merge counts in each union)
    assert (scores.aji_intersection, scores.aji_union) == (40, 80)
    assert scores.aji == pytest.approx(0.5)


def test_aji_by_hand_with_a_miss_and_a_false_positive() -> None:
    # truth A rows 0-1 cols 0-4 (10 px), truth B rows 6-7 cols 0-2 (6 px, overlapped by nothing);
    # prediction P rows 0-1 cols 1-5 (10 px, 8 shared with A), Q rows 9-10 cols 8-10 (6 px, overlaps nothing)
    truth = _squares((0, 0, 2, 5), (6, 0, 8, 3))
    predicted = _squares((0, 1, 2, 6), (9, 8, 11, 11))
    scores = score_objects(truth, predicted)
    # I = |A∩P| = 8; U = |A∪P| (12) + |B| (6, no partner) + |Q| (6, unused) = 24
    assert (scores.aji_intersection, scores.aji_union) == (8, 24)
    assert scores.aji == pytest.approx(1 / 3)
    # A-P IoU 8/12 matches; B is missed, Q is a false positive
    assert (scores.tp, scores.fp, scores.fn) == (1, 1, 1)
    assert scores.pq == pytest.approx((8 / 12) / 2)


def test_aji_pairs_each_truth_with_its_largest_iou() -> None:
    # truth A rows 0-3 cols 0-3 (16 px); P rows 0-3 cols 0-1 (8 px, IoU 8/16), Q rows 0-3 cols 2-5 (16 px,
    # 8 shared, IoU 8/24). A pairs with P: I = 8, U = 16; Q is unused: U += 16. AJI = 8/32.
    truth = _squares((0, 0, 4, 4))
    predicted = _squares((0, 0, 4, 2), (0, 2, 4, 6))
    scores = score_objects(truth, predicted)
    assert (scores.aji_intersection, scores.aji_union) == (8, 32)
    # IoU 0.5 is not above the threshold: no match
    assert (scores.tp, scores.fp, scores.fn) == (0, 2, 1)


def test_drop_mostly_ignored_removes_only_objects_more_than_half_ignored() -> None:
    labels = _squares((0, 0, 2, 5), (4, 0, 6, 5))  # two objects of 10 px
    ignore = np.zeros(labels.shape, bool)
    ignore[0:2, 0:3] = True  # 6 of object 1's pixels (60%)
    ignore[4:6, 0:2] = True  # 4 of object 2's pixels (40%)
    kept = drop_mostly_ignored(labels, ignore)
    assert not (kept == 1).any()
    assert np.array_equal(kept == 2, labels == 2)


def test_ignored_objects_count_on_neither_side() -> None:
    # truth 1 (10 px) is 60% ignored; prediction 1 covers exactly it; truth 2 (10 px) is 40% ignored
    # and prediction 2 covers only its 6 unignored pixels (IoU 6/10 without the rule, 1 with it)
    truth = _squares((0, 0, 2, 5), (4, 0, 6, 5))
    predicted = _squares((0, 0, 2, 5), (4, 2, 6, 5))
    ignore = np.zeros(truth.shape, bool)
    ignore[0:2, 0:3] = True
    ignore[4:6, 0:2] = True
    classes = np.array([1, 1])
    scores = score_image(truth, classes, predicted, classes, ignore, [1]).overall
    assert (scores.tp, scores.fp, scores.fn) == (1, 0, 0)
    assert scores.iou_sum == pytest.approx(1.0)
    assert (scores.aji_intersection, scores.aji_union) == (6, 6)
    unignored = score_image(truth, classes, predicted, classes, None, [1]).overall
    assert (unignored.tp, unignored.fp, unignored.fn) == (2, 0, 0)
    assert unignored.iou_sum == pytest.approx(1 + 6 / 10)


def test_a_prediction_mostly_in_the_ignore_region_is_no_false_positive() -> None:
    truth = np.zeros((12, 12), np.int32)
    predicted = _squares((0, 0, 2, 5))
    ignore = np.zeros(truth.shape, bool)
    ignore[0:2, 0:3] = True
    scores = score_image(truth, np.zeros(0, int), predicted, np.array([2]), ignore, [1, 2]).overall
    assert (scores.tp, scores.fp, scores.fn) == (0, 0, 0)


def test_per_class_scores_match_only_objects_of_that_class() -> None:
    # truth: A (class 1) and B (class 2); prediction: A' over A but class 2, B' over B class 2
    truth = _squares((0, 0, 4, 4), (6, 6, 10, 10))
    predicted = truth.copy()
    result = score_image(truth, np.array([1, 2]), predicted, np.array([2, 2]), None, [1, 2])
    assert (result.overall.tp, result.overall.fp, result.overall.fn) == (2, 0, 0)
    one, two = result.by_class[1], result.by_class[2]
    assert (one.tp, one.fp, one.fn) == (0, 0, 1)  # A is missed by its class
    assert (two.tp, two.fp, two.fn) == (1, 1, 0)  # A' is a false positive of class 2
    assert one.pq == 0.0 and two.pq == pytest.approx(1 / 1.5)
    # AJI per class: class 2 pairs B with B' (16/16), A' unused (+16): 16/32; class 1: A alone, 0/16
    assert (two.aji_intersection, two.aji_union) == (16, 32)
    assert (one.aji_intersection, one.aji_union) == (0, 16)


def test_scores_add_counts() -> None:
    total = ObjectScores(1, 2, 3, 0.5, 10, 20) + ObjectScores(4, 0, 1, 2.5, 5, 10)
    assert total == ObjectScores(5, 2, 4, 3.0, 15, 30)


def test_split_figures_sum_counts_and_image_means_average_images() -> None:
    # image 1: class 1 tp 1 (IoU 0.8), class 2 fn 1; image 2: class 1 tp 3 (IoUs sum 1.8), fp 1, class 2 nothing
    image_1 = ImageScores(ObjectScores(1, 0, 1, 0.8, 8, 18),
                          {1: ObjectScores(1, 0, 0, 0.8, 8, 10), 2: ObjectScores(0, 0, 1, 0.0, 0, 8)})
    image_2 = ImageScores(ObjectScores(3, 1, 0, 1.8, 30, 50),
                          {1: ObjectScores(3, 1, 0, 1.8, 30, 50), 2: ObjectScores()})
    names = {0: "background", 1: "Tumour cell", 2: "lymph-ocyte"}
    figures = object_figures([image_1, image_2], names)
    # split: tp 4, fp 1, fn 1, IoU sum 2.6, AJI 38/68
    assert figures["object_precision"] == pytest.approx(4 / 5)
    assert figures["object_recall"] == pytest.approx(4 / 5)
    assert figures["object_f1"] == pytest.approx(8 / 10)
    assert figures["dq"] == pytest.approx(4 / 5)
    assert figures["sq"] == pytest.approx(2.6 / 4)
    assert figures["pq"] == pytest.approx(2.6 / 5)
    assert figures["aji"] == pytest.approx(38 / 68)
    # class 1 over the split: tp 4, fp 1, IoU 2.6 -> pq 2.6 / 4.5; class 2: fn 1 -> pq 0
    assert figures["pq_tumour_cell"] == pytest.approx(2.6 / 4.5)
    assert figures["pq_lymph_ocyte"] == 0.0
    assert math.isnan(figures["sq_lymph_ocyte"])
    assert figures["mpq"] == pytest.approx((2.6 / 4.5 + 0) / 2)
    # per image: pq 0.8/1.5 and 1.8/3.5; recall 1/2 and 3/3; precision 1/1 and 3/4
    assert figures["pq_image_mean"] == pytest.approx((0.8 / 1.5 + 1.8 / 3.5) / 2)
    assert figures["object_recall_image_mean"] == pytest.approx((0.5 + 1.0) / 2)
    assert figures["object_precision_image_mean"] == pytest.approx((1.0 + 0.75) / 2)
    # class 2 is defined in image 1 only (pq 0); image 2 has no object of it
    assert figures["pq_lymph_ocyte_image_mean"] == 0.0
    # PanNuke's mPQ: image 1 holds truth of both classes: (0.8 + 0) / 2; image 2 of class 1 only: 1.8/3.5
    assert figures["mpq_image_mean"] == pytest.approx((0.4 + 1.8 / 3.5) / 2)
    row = image_figures(image_2, names)
    assert row["mpq"] == pytest.approx(1.8 / 3.5)
    assert math.isnan(row["pq_lymph_ocyte"])
    assert set(row) | {f"{name}_image_mean" for name in row} == set(figures)


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_an_image_of_a_thousand_objects_a_side_scores_fast(threshold: float) -> None:
    import time

    rng = np.random.default_rng(5)
    size, cell = 1024, 32  # one disc of radius 5-12 in each 32 x 32 cell: 1024 objects
    rows, columns = np.mgrid[:size, :size]
    cell_id = (rows // cell) * (size // cell) + columns // cell + 1
    radius = rng.integers(5, 13, cell_id.max() + 1)[cell_id]
    inside = (rows % cell - cell // 2) ** 2 + (columns % cell - cell // 2) ** 2 <= radius**2
    truth = np.where(inside, cell_id, 0).astype(np.int32)
    predicted = np.roll(truth, (1, 1), axis=(0, 1))
    started = time.perf_counter()
    scores = score_objects(truth, predicted, threshold)
    elapsed = time.perf_counter() - started
    assert (scores.tp, scores.fp, scores.fn) == (1024, 0, 0)
    # measured about 0.1 s on one core; the bound leaves room for a loaded machine, not for an all-by-all matrix
    assert elapsed < 0.5, elapsed


def test_scoring_needs_no_tensorflow_and_imports_scipy_only_when_assigning() -> None:
    from segkit_process import block_imports, output_of, run_python

    # with TensorFlow, Keras and scikit-image unimportable, an image still scores; SciPy loads only for
    # an assignment below IoU 0.5
    script = block_imports(["tensorflow", "keras", "skimage"]) + (
        "import numpy as np\n"
        "from segkit.objects.scoring import score_objects\n"
        "labels = np.zeros((8, 8), np.int32); labels[:4, :4] = 1\n"
        "print(score_objects(labels, labels).tp, 'scipy' in sys.modules)\n"
        "print(score_objects(labels, labels, 0.3).tp, 'scipy' in sys.modules)\n")
    result = run_python(script)
    assert result.returncode == 0 and result.stdout.split() == ["1", "False", "1", "True"], output_of(result)
