"""What a cohort will read and write, checked before a cluster starts or anything is written.

Slides are listed (:mod:`segkit.cohort.slide_list`), not opened: a slide's own problems are its
row's, found by the worker. Refused here, in one line each: no trained model, a model without a
pixel size, an output folder inside the slides' folder, a file there segkit did not write (without
``--overwrite``), and an output folder that holds slides of ANOTHER model or that another model's
cohort is writing into (its marker, :data:`COHORT_MARKER`): a cohort's folder is of one model, so
its table and its skipped slides never mix two. A slide whose record says it is complete for this
model is planned as done: the cohort skips it and keeps its row.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from segkit.data.names import quoted
from segkit.durable import replace_atomically
from segkit.engine.infer_plan import foreign_files, record_outputs
from segkit.engine.slide_plan import SlideOptions
from segkit.errors import DataError
from segkit.optional import parquet_available
from segkit.plugins import Registry
from segkit.project import Project
from segkit.cohort.slide_list import cohort_slides
from segkit.slides.outputs import RECORD_SUFFIX, SlideOutputs, read_slide_record, slide_complete

#: the cohort's table, a row per slide, in its output folder (and .parquet beside it)
COHORT_TABLE = "cohort.csv"
#: which model the cohort writing into a folder uses, written before its first slide starts
COHORT_MARKER = ".segkit-cohort.json"


@dataclass(frozen=True)
class CohortSlide:
    """One slide of the cohort, its outputs, and its row when it is already complete for this model."""

    path: Path
    outputs: SlideOutputs
    done_row: dict[str, object] | None = None


@dataclass(frozen=True)
class CohortPlan:
    """The slides, where they go, the model's digest, and the files of others ``--overwrite`` lets go."""

    slides: tuple[CohortSlide, ...]
    out: Path
    digest: str
    options: SlideOptions
    replaced: tuple[Path, ...] = ()

    @property
    def table(self) -> Path:
        return self.out / COHORT_TABLE

    @property
    def todo(self) -> list[CohortSlide]:
        return [slide for slide in self.slides if slide.done_row is None]

    def outputs(self) -> dict[Path, tuple[str, ...]]:
        """Every name the cohort writes into its folder (what its manifest lists)."""
        tables = (COHORT_TABLE, *([COHORT_TABLE.replace(".csv", ".parquet")] if parquet_available() else []))
        names = tuple(path.name for slide in self.todo for path in slide.outputs.every())
        return {self.out: names + tables}


def plan_cohort(project: Project, source: Path, out: Path, registry: Registry, options: SlideOptions,
                overwrite: bool = False) -> CohortPlan:
    """The cohort of ``source`` (folder or list file) into ``out``, every check of the module's docstring."""
    from segkit.engine.slide_infer import model_microns_per_pixel, project_slide_outputs

    if options.region is not None:
        raise DataError("--region: a region is of one slide; a cohort segments its slides whole (leave --region out)")
    mpp = options.microns_per_pixel
    if mpp is not None and not (math.isfinite(mpp) and mpp > 0):
        raise DataError(f"--microns-per-pixel: {mpp} is not a pixel size (give the scanner's µm per pixel, e.g. 0.25)")
    model_microns_per_pixel(project)
    digest = options.model_digest(project)  # no trained model (or fold) is refused here
    paths = cohort_slides(source, registry)
    out = out.absolute()
    _refuse_inside(out, source)
    if not overwrite:
        _refuse_another_model(out, digest)
    slides = tuple(_planned(path, project_slide_outputs(project, path, out), digest) for path in paths)
    _refuse_replacing_inputs(slides)
    plan = CohortPlan(slides, out, digest, options)
    foreign = tuple(foreign_files(plan.outputs()))
    if foreign and not overwrite:
        names = ", ".join(quoted(path.name) for path in foreign[:3]) + (" and more" if len(foreign) > 3 else "")
        raise DataError(f"{quoted(out)}: the cohort would replace {len(foreign)} file(s) segkit did not write ({names}); "
                        "move them, choose another output folder, or pass --overwrite")
    return CohortPlan(slides, out, digest, options, foreign)


def start_writing(plan: CohortPlan) -> None:
    """The folder's manifest lists what the cohort writes, and its marker names the model, before any slide."""
    record_outputs(plan.outputs())
    document = {"written_by": "segkit infer --slides", "model_sha256": plan.digest}
    replace_atomically(plan.out / COHORT_MARKER, lambda path: path.write_text(json.dumps(document) + "\n"))


def _planned(path: Path, outputs: SlideOutputs, digest: str) -> CohortSlide:
    if not slide_complete(outputs, digest):
        return CohortSlide(path, outputs)
    summary = (read_slide_record(outputs) or {}).get("summary")
    whole = isinstance(summary, dict) and summary.get("region", "") == ""  # a region's record is not the slide's
    return CohortSlide(path, outputs, dict(summary) if whole and isinstance(summary, dict) else None)


def _refuse_inside(out: Path, source: Path) -> None:
    """Outputs never go into (or below) the folder of the slides, nor where the list file is."""
    folder = (source if source.is_dir() else source.parent).resolve()
    resolved = out.resolve()
    if source.is_dir() and (resolved == folder or folder in resolved.parents):
        raise DataError(f"--out: {quoted(out)} is (or lies inside) the folder of the slides, {quoted(source)}; "
                        "choose another output folder")


def _refuse_replacing_inputs(slides: tuple[CohortSlide, ...]) -> None:
    inputs = {slide.path.resolve(): slide.path for slide in slides}
    for slide in slides:
        for target in slide.outputs.every():
            if target.resolve() in inputs:
                raise DataError(f"{quoted(target)}: is the input slide {quoted(inputs[target.resolve()])}; "
                                "choose another output folder")


def _refuse_another_model(out: Path, digest: str) -> None:
    """``out`` holds no slide record, nor a cohort marker, of a model other than ``digest``'s."""
    if not out.is_dir():
        return
    marker = _model_named(out / COHORT_MARKER)
    others = [path for path in sorted(out.glob(f"*{RECORD_SUFFIX}")) if _model_named(path) not in (None, digest)]
    if others or marker not in (None, digest):
        what = (f"{len(others)} slide(s) segmented by another model (e.g. {quoted(others[0].name)})" if others
                else f"the marker of a cohort of another model ({COHORT_MARKER})")
        raise DataError(f"{quoted(out)}: holds {what}; a cohort's output folder is of one model: choose another "
                        "output folder, or pass --overwrite to segment them again with this model")


def _model_named(path: Path) -> str | None:
    """The ``model_sha256`` a record or marker names; None when there is none or it cannot be read."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = document.get("model_sha256") if isinstance(document, dict) else None
    return value if isinstance(value, str) else None
