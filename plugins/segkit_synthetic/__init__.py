"""segkit's built-in demo dataset: synthetic H&E tiles generated from a seed, no download."""

from __future__ import annotations

from collections.abc import Iterable

from segkit.plugin import DatasetSpec, hookimpl
from segkit_synthetic.synthetic_dataset import SYNTHETIC_OPTIONS, open_synthetic_he


@hookimpl
def segkit_datasets() -> Iterable[DatasetSpec]:
    return [
        DatasetSpec(
            name="synthetic-he",
            description="generated H&E-like tiles: small even benign nuclei, large dark crowded malignant ones",
            build=open_synthetic_he,
            options=SYNTHETIC_OPTIONS,
        )
    ]
