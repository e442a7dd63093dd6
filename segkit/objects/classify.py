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


def checked_instances(instances: object, softmax_shape: tuple[int, ...], instancer: str, image: str) -> Instances:
    """What an instancer plugin returned for ``image`` (whose softmax is ``(H, W, K)``), held to the
    contract, as :class:`Instances`.

    A plugin's mistake caught here is one PluginError line naming the instancer, not a broken
    table, a GeoJSON of the wrong nuclei or a scorer's traceback later on.
    """
    from segkit.errors import PluginError

    problem = _contract_problem(instances, softmax_shape)
    if problem:
        raise PluginError(f"instancer {instancer!r}: returned {problem} for {image} "
                          "(a bug in the instancer plugin; report it to its authors)")
    assert isinstance(instances, Instances)
    return Instances(np.asarray(instances.labels).astype(np.int32, copy=False), np.asarray(instances.classes),
                     np.asarray(instances.probabilities, np.float32))


def _contract_problem(instances: object, softmax_shape: tuple[int, ...]) -> str:
    """Why ``instances`` breaks the contract for a softmax of ``softmax_shape`` ("" when it keeps it)."""
    shape, num_classes = tuple(softmax_shape[:2]), softmax_shape[2]
    if not isinstance(instances, Instances):
        return f"a {type(instances).__name__}, not Instances"
    labels, classes = np.asarray(instances.labels), np.asarray(instances.classes)
    count = len(classes)
    if labels.shape != shape:
        return f"labels of shape {labels.shape}, not the image's {shape}"
    if not np.issubdtype(labels.dtype, np.integer):
        return f"labels of dtype {labels.dtype}, not integers"
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) != count):
        return f"{count} classes for labels {int(labels.min())}..{int(labels.max())} (ids must be 0 and 1..N)"
    if not labels.size and count:
        return f"{count} classes for an empty label image"
    if count and (not np.issubdtype(classes.dtype, np.integer) or int(classes.min()) < 1
                  or int(classes.max()) >= num_classes):
        return f"classes that are not foreground class indices 1..{num_classes - 1}"
    if len(instances.probabilities) != count:
        return f"{len(instances.probabilities)} probabilities for {count} objects"
    return ""
