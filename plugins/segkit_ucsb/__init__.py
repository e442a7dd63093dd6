"""segkit's preparer for the original UCSB breast-cancer-cell download (``segkit prepare ucsb-bcc``)."""

from __future__ import annotations

from collections.abc import Iterable

from segkit.plugin import DatasetSpec, PreparerSpec, hookimpl
from segkit_ucsb.prepare_ucsb import UCSB_OPTIONS, prepare_ucsb
from segkit_ucsb.ucsb_dataset import UCSB_SPLITS, open_ucsb


@hookimpl
def segkit_preparers() -> Iterable[PreparerSpec]:
    return [
        PreparerSpec(
            name="ucsb-bcc",
            description="UCSB breast-cancer-cell download (Images/*_ccd.tif, Masks/*.TIF) -> split folders by tissue core",
            build=prepare_ucsb,
            options=UCSB_OPTIONS,
        )
    ]


@hookimpl
def segkit_datasets() -> Iterable[DatasetSpec]:
    return [
        DatasetSpec(
            name="ucsb-bcc",
            description="a prepared UCSB folder (images/ and masks/ per split), each image grouped by its tissue core",
            build=open_ucsb,
            options=UCSB_SPLITS,
        )
    ]
