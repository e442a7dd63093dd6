"""The slides of a ``segkit infer`` call, checked before the model loads or anything is written.

Each slide is opened, its pixel size found, its level chosen, its tissue found and its tiles (of
``--region`` when given) listed, exactly as :func:`~segkit.engine.slide_infer.segment_slide` will,
so a bad slide is one line before the first mask is written. A slide whose record says it is
complete for the run's model file (and the same region) is planned as *done*: infer skips it and
keeps its row for ``slides.csv``. The output folder's disk must have room for the largest mask's
scratch file, which :class:`~segkit.slides.pyramid.MaskCanvas` would otherwise find full mid-call.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from segkit.data.names import quoted, shown_path
from segkit.engine.best_model import model_file_digest
from segkit.errors import DataError
from segkit.plugins import Registry
from segkit.project import Project
from segkit.run_folder import BEST_MODEL
from segkit.slides.open_slide import open_slide, require_microns_per_pixel
from segkit.slides.outputs import SlideOutputs, read_slide_record, slide_complete

#: how a user gives a slide without a pixel size one (the message's "what to do")
MPP_HINT = "pass --microns-per-pixel with the scanner's µm per pixel"
#: a canvas and the reduced levels made from it while its pyramid is saved: 1 + 1/4 + 1/16 + ... of level 0
PYRAMID_SCRATCH = 4 / 3

Region = tuple[int, int, int, int]


@dataclass(frozen=True)
class SlideOptions:
    """What the command line adds for slides: a pixel size replacing the files', a level-0 region,
    and the folds whose ensemble segments them (``--folds``; None: the run's best model)."""

    microns_per_pixel: float | None = None
    region: Region | None = None
    folds: tuple[int, ...] | None = None

    def model_digest(self, project: Project) -> str:
        """What names the model in a slide's record: the best-model file's SHA-256, or the ensemble's."""
        if self.folds is None:
            return model_file_digest(project)
        from segkit.cv.ensemble import ensemble_digest

        return ensemble_digest(project, self.folds)


#: a call without slide options: the files' own pixel sizes, whole slides
NO_SLIDE_OPTIONS = SlideOptions()


@dataclass(frozen=True)
class PlannedSlide:
    """One slide of the call: its outputs, the bytes of scratch its mask needs, and, when the slide is
    already complete for this model, the summary row its record holds (then infer skips it)."""

    path: Path
    outputs: SlideOutputs
    scratch_bytes: int
    done_row: dict[str, object] | None = None

    @property
    def done(self) -> bool:
        return self.done_row is not None


def parse_region(text: str) -> Region:
    """``x,y,w,h`` in level-0 pixels (``--region``): four whole numbers, x and y >= 0, w and h >= 1."""
    parts = [part.strip() for part in text.split(",")]
    try:
        values = tuple(int(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or min(values[:2]) < 0 or min(values[2:]) < 1:
        raise DataError(f"--region: {text!r} is not x,y,w,h (give four whole numbers in level-0 pixels, "
                        "x and y at least 0, w and h at least 1, e.g. --region 0,0,4096,4096)")
    return values[0], values[1], values[2], values[3]


def plan_slides(project: Project, slides: Sequence[Path], masks: Path, registry: Registry,
                options: SlideOptions) -> list[PlannedSlide]:
    """Every slide checked (see the module's docstring); ``--region`` needs exactly one slide."""
    if options.region is not None and len(slides) != 1:
        raise DataError(f"--region: a region is of one slide, and this call has {len(slides)} slides "
                        "(give exactly one slide with --region, or leave --region out)")
    mpp = options.microns_per_pixel
    if mpp is not None and not (math.isfinite(mpp) and mpp > 0):
        raise DataError(f"--microns-per-pixel: {mpp} is not a pixel size (give the scanner's µm per pixel, e.g. 0.25)")
    if not slides:
        return []
    trained = options.folds is not None or (project.output_dir / BEST_MODEL).is_file()
    digest = options.model_digest(project) if trained else None
    planned = [_plan_slide(project, path, masks, registry, options, digest) for path in slides]
    _check_room(masks, [slide for slide in planned if not slide.done])
    return planned


def _plan_slide(project: Project, path: Path, masks: Path, registry: Registry, options: SlideOptions,
                digest: str | None) -> PlannedSlide:
    # segment_slide's own checks, run now so that they fail before any slide is segmented
    from segkit.engine.slide_infer import model_microns_per_pixel, planned_slide, project_slide_outputs

    target = model_microns_per_pixel(project)
    with open_slide(path, registry, microns_per_pixel=options.microns_per_pixel) as slide:
        require_microns_per_pixel(slide, path, MPP_HINT)  # worded for the command line
    with planned_slide(project, path, registry, target, options.microns_per_pixel, options.region) as setup:
        width, height = setup.slide.level_dimensions[0]
    outputs = project_slide_outputs(project, path, masks)
    return PlannedSlide(path, outputs, math.ceil(width * height * PYRAMID_SCRATCH),
                        _done_row(outputs, digest, options.region))


def _done_row(outputs: SlideOutputs, digest: str | None, region: Region | None) -> dict[str, object] | None:
    """The record's summary row when the slide is complete for model ``digest`` and of the same region."""
    if digest is None or not slide_complete(outputs, digest):
        return None
    summary = (read_slide_record(outputs) or {}).get("summary")
    wanted = "" if region is None else ",".join(str(value) for value in region)
    if not isinstance(summary, dict) or summary.get("region", "") != wanted:
        return None
    return summary


def _check_room(masks: Path, slides: Sequence[PlannedSlide]) -> None:
    """The disk of ``masks`` holds the largest slide's mask scratch (slides are segmented one at a time)."""
    if not slides:
        return
    largest = max(slides, key=lambda slide: slide.scratch_bytes)
    existing = next(folder for folder in (masks, *masks.parents) if folder.is_dir())
    free = shutil.disk_usage(existing).free
    if free < largest.scratch_bytes:
        raise DataError(f"{shown_path(masks)}: the disk has {_megabytes(free)} free and the mask of "
                        f"{quoted(largest.path.name)} needs {_megabytes(largest.scratch_bytes)} of scratch space "
                        "while it is made (free space on that disk or choose another output folder)")


def _megabytes(count: int) -> str:
    value = count / 2**20
    return f"{value:,.0f} MiB" if value >= 100 else f"{value:.3g} MiB"
