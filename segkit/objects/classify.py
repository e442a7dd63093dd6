"""One class and one probability per object, read from the model's softmax over the object's pixels.

Every instancer ends here, whatever way it separated the nuclei: an object's class is the
foreground class with the largest probability mass over its pixels (a soft majority vote, so a
nucleus whose rim is uncertain still takes the class its body shows), and its probability is that
class's mean softmax over the same pixels, the figure a user filters on.
"""

from __future__ import annotations

import numpy as np

from segkit.specs import Instances


def instances_from_labels(labels: np.ndarray, probabilities: np.ndarray) -> Instances:
    """``labels`` (H, W), any integer ids with 0 = no object, as :class:`Instances` numbered ``1..N``.

    ``probabilities`` is the (H, W, K) softmax, K >= 2 with class 0 the background. Ids are
    renumbered consecutively in increasing order of the ids given; an object's class is the argmax
    over classes ``1..K-1`` of the probabilities summed over its pixels, its probability that
    class's mean over them. Raises ValueError when the shapes do not fit together.
    """
    labels, probabilities = np.asarray(labels), np.asarray(probabilities, dtype=np.float32)
    _check_shapes(labels, probabilities)
    ids, consecutive = np.unique(labels, return_inverse=True)
    has_background = ids.size > 0 and ids[0] == 0
    if not has_background:  # every pixel belongs to an object: shift so that object 1 is not read as 0
        consecutive = consecutive + 1
    count = ids.size - int(has_background)
    consecutive = consecutive.reshape(labels.shape).astype(np.int32)
    flat = consecutive.ravel()
    areas = np.bincount(flat, minlength=count + 1)[1:]
    sums = np.stack([np.bincount(flat, weights=probabilities[..., k].ravel(), minlength=count + 1)[1:]
                     for k in range(1, probabilities.shape[-1])], axis=1)
    best = np.argmax(sums, axis=1)  # (N, K - 1) with K >= 2: defined for N = 0 too
    mean = sums[np.arange(count), best] / np.maximum(areas, 1)
    return Instances(labels=consecutive, classes=(best + 1).astype(np.int32), probabilities=mean.astype(np.float32))


def _check_shapes(labels: np.ndarray, probabilities: np.ndarray) -> None:
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"instance labels must be a 2-D integer array, got {labels.dtype} {labels.shape}")
    if probabilities.ndim != 3 or probabilities.shape[:2] != labels.shape or probabilities.shape[-1] < 2:
        raise ValueError(f"probabilities {probabilities.shape} do not fit labels {labels.shape}: expected "
                         f"(H, W, K) with K >= 2 classes, background first")
    if labels.size and labels.min() < 0:
        raise ValueError(f"instance labels must not be negative, got {labels.min()}")
