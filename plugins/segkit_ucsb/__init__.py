"""segkit's preparer for the original UCSB breast-cancer-cell download (``segkit prepare ucsb-bcc``)."""

from __future__ import annotations

from collections.abc import Iterable

from segkit.plugin import PreparerSpec, hookimpl
from segkit_ucsb.prepare_ucsb import UCSB_OPTIONS, prepare_ucsb


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
