"""``connected-components``: each class's argmax regions as objects, what a semantic mask gives.

Touching nuclei of one class are one object here; this is the baseline the separating
instancers are measured against, and the instances a class-colour mask implies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from skimage.measure import label

from segkit.plugin import Instances, instances_from_labels


def without_small(labels: np.ndarray, min_area: int) -> np.ndarray:
    """``labels`` with the objects of fewer than ``min_area`` pixels set to 0.

    Counted with ``bincount`` rather than ``skimage.morphology.remove_small_objects``, whose size
    keyword changed meaning between the scikit-image releases the ``objects`` extra accepts.
    """
    if min_area <= 1 or not labels.any():
        return labels
    small = np.bincount(labels.ravel()) < min_area
    small[0] = False
    return np.where(small[labels], 0, labels).astype(np.int32)


@dataclass(frozen=True)
class ComponentsInstancer:
    """4-connected regions of equal argmax class (the same connectivity as the truth's components)."""

    min_area: int

    def __call__(self, probabilities: Any, image: Any) -> Instances:
        """Objects of one image's softmax (H, W, K); the image is not looked at."""
        probabilities = np.asarray(probabilities, dtype=np.float32)
        winners = probabilities.argmax(axis=-1)
        # label() joins neighbours of equal value, so each class's regions are labelled apart in one pass
        regions = label(winners, background=0, connectivity=1).astype(np.int32)
        return instances_from_labels(without_small(regions, self.min_area), probabilities)
