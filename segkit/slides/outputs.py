"""What segmenting one slide writes, by name, and the record that says it is complete.

Every slide ``<stem>`` (``slide`` of ``slide.svs`` and of ``slide.ome.tif``) writes into its output
folder the tissue PNG, the class mask as a pyramidal OME-TIFF and, with ``[instances]``, its nuclei
(QuPath GeoJSON detections and the per-nucleus table). The **slide record** ``<stem>.slide.json`` is
written last, atomically: it holds the slide's summary row and the digest of the model file that
made it, so a slide whose record is there, names the same model and lists outputs that all exist
is complete (``segkit infer`` on a cohort skips it; any other state is redone or resumed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segkit.durable import replace_atomically

#: names the OME-TIFF convention gives pyramidal TIFFs (Bio-Formats picks its OME reader by them)
OME_SUFFIXES = (".ome.tif", ".ome.tiff")
#: the record of a finished slide, beside its outputs
RECORD_SUFFIX = ".slide.json"


@dataclass(frozen=True)
class SlideOutputs:
    """The files one slide's segmentation ends with; ``detections`` and ``table`` are None without nuclei."""

    tissue: Path
    mask: Path
    record: Path
    detections: Path | None = None
    table: Path | None = None

    def products(self) -> tuple[Path, ...]:
        """The outputs proper (everything but the record), in the order they are made."""
        return tuple(path for path in (self.tissue, self.mask, self.detections, self.table) if path is not None)

    def every(self) -> tuple[Path, ...]:
        """Every file, the record last (what a manifest lists and a completeness check tests)."""
        return (*self.products(), self.record)


def slide_stem(path: Path) -> str:
    """``slide`` of ``slide.svs`` and of ``slide.ome.tif`` alike."""
    lower = path.name.lower()
    suffix = next((s for s in OME_SUFFIXES if lower.endswith(s)), path.suffix)
    return path.name[: len(path.name) - len(suffix)]


def slide_outputs(slide: Path, folder: Path, *, nuclei: bool = False, compress_geojson: bool = False,
                  parquet: bool = True) -> SlideOutputs:
    """The names ``slide`` writes into ``folder``: with ``nuclei``, its detections (``.geojson.gz`` when
    ``compress_geojson``) and its nucleus table (Parquet when ``parquet``, else CSV)."""
    stem = slide_stem(slide)
    detections = table = None
    if nuclei:
        detections = folder / f"{stem}.nuclei.geojson{'.gz' if compress_geojson else ''}"
        table = folder / f"{stem}.nuclei.{'parquet' if parquet else 'csv'}"
    return SlideOutputs(folder / f"{stem}.tissue.png", folder / f"{stem}.mask.ome.tif",
                        folder / f"{stem}{RECORD_SUFFIX}", detections, table)


def write_slide_record(outputs: SlideOutputs, row: Mapping[str, Any], model_digest: str) -> None:
    """The record of a finished slide: its summary ``row``, the model digest and the outputs' names."""
    document = {"written_by": "segkit infer", "model_sha256": model_digest,
                "outputs": [path.name for path in outputs.products()], "summary": dict(row)}
    replace_atomically(outputs.record, lambda path: path.write_text(json.dumps(document, indent=1) + "\n"))


def read_slide_record(outputs: SlideOutputs) -> dict[str, Any] | None:
    """The record of ``outputs``, or None when it is missing or unreadable (then the slide is not done)."""
    try:
        document = json.loads(outputs.record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def slide_complete(outputs: SlideOutputs, model_digest: str) -> bool:
    """Whether the slide's record is there, was made by the model of ``model_digest`` and every output
    it lists exists (a slide done by another model, or half-deleted, is not complete)."""
    document = read_slide_record(outputs)
    if document is None or document.get("model_sha256") != model_digest:
        return False
    expected = [path.name for path in outputs.products()]
    return document.get("outputs") == expected and all(path.is_file() for path in outputs.products())
