"""The class mask of a whole slide, in bounded memory (issue 27, item 2): ``<stem>.mask.ome.tif``.

The slide is read at the pyramid level nearest the model's pixel size (:func:`choose_level`),
only where the tissue mask (written as ``<stem>.tissue.png``) says there is tissue. Tiles are read
by a thread one batch ahead of the model, go through the compiled predict path in batches, and are
blended with Gaussian weights in level pixels: a *band* of level rows, as tall as a tile and as
wide as the level, holds the weighted softmax of the tiles of the current grid row; the rows above
the next grid row's first row are complete once the row is done (no later tile covers them), so
they are argmaxed, upscaled to level 0 by nearest neighbour and written to a :class:`MaskCanvas`.

Memory: ``2 x read_height x level width x (classes + 1)`` float32 for the band, plus one batch of
tiles; it depends on the tile size, the batch and the slide's WIDTH, never on its height or area.
Pixels no tile covers (glass) are class 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import time

import numpy as np

from segkit.engine.prediction import Prediction
from segkit.engine.slide_resume import SlideCheckpoints, partial_folder, resume_key
from segkit.errors import DataError, ProjectError
from segkit.optional import parquet_available
from segkit.plugins import Registry
from segkit.project import Project
from segkit.engine.slide_sinks import MaskSink, RowSink
from segkit.slides.grid import Tile, choose_level, tile_grid
from segkit.slides.open_slide import CheckedSlide, level_origin, open_slide, require_microns_per_pixel
from segkit.slides.outputs import SlideOutputs, slide_outputs, write_slide_record
from segkit.slides.pyramid import MaskCanvas
from segkit.slides.tissue import TissueMask, tissue_mask, write_tissue_png

if TYPE_CHECKING:
    from segkit.engine.slide_nuclei import NucleusSink

#: how to set the pixel size of a slide whose file has none (the override open_slide takes)
SLIDE_MPP_HINT = "pass the scanner's µm per pixel as the slide's pixel size override"


#: a slide's progress, called after each batch: (tiles done, tiles in all)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SlideResult:
    """What :func:`segment_slide` wrote and how: the files, the level read, the tiles predicted.

    ``tiles_resumed`` counts tiles an interrupted earlier call had already done; ``nuclei`` and
    ``nuclei_per_class`` are 0 and empty without ``[instances]``.
    """

    outputs: SlideOutputs
    level: int
    scale: float
    tiles: int
    tissue_mm2: float
    seconds: float
    region: tuple[int, int, int, int] | None = None
    tiles_resumed: int = 0
    nuclei: int = 0
    nuclei_per_class: Mapping[str, int] = field(default_factory=dict)

    @property
    def mask(self) -> Path:
        return self.outputs.mask

    @property
    def tissue(self) -> Path:
        return self.outputs.tissue

    def summary_row(self, slide: Path) -> dict[str, object]:
        """The slide's row of a summary table (``segkit infer``'s slides.csv, a cohort's summary)."""
        per_mm2 = self.nuclei / self.tissue_mm2 if self.tissue_mm2 > 0 else float("nan")
        region = "" if self.region is None else ",".join(str(v) for v in self.region)
        return {"slide": str(slide), "region": region, "level": self.level, "scale": round(self.scale, 6),
                "tiles": self.tiles, "tiles_resumed": self.tiles_resumed, "tissue_mm2": round(self.tissue_mm2, 6),
                "nuclei": self.nuclei, **{f"nuclei_{name}": count for name, count in self.nuclei_per_class.items()},
                "nuclei_per_mm2": round(per_mm2, 3), "seconds": round(self.seconds, 3),
                "mask": self.outputs.mask.name}


@dataclass(frozen=True)
class _Setup:
    """A slide opened and planned: the level and tiles to read, and the tissue they came from."""

    slide: CheckedSlide
    mpp: tuple[float, float]
    level: int
    scale: float
    tissue: TissueMask
    tiles: list[Tile]


def segment_slide(project: Project, slide_path: Path, out_folder: Path, registry: Registry,
                  microns_per_pixel: float | tuple[float, float] | None = None, overwrite: bool = False, *,
                  region: tuple[int, int, int, int] | None = None, model: Any | None = None,
                  model_digest: str | None = None, progress: Progress | None = None) -> SlideResult:
    """Segment ``slide_path`` with the run's best model into ``out_folder``; ``microns_per_pixel``
    overrides the slide's own pixel size, ``region`` (level-0 ``x, y, width, height``) limits it to
    a part of the slide. ``model`` is the loaded best model (a cohort worker loads it once; loaded
    here when None) and ``model_digest`` its :func:`~segkit.engine.best_model.model_file_digest`.

    Everything is checked before the model loads; an output already there is replaced only with
    ``overwrite`` (``segkit infer`` decides that from its manifests). Nothing is written under a
    final name before the mask is complete; the slide record
    (:func:`~segkit.slides.outputs.write_slide_record`) is written last. An interrupted call leaves a
    checkpoint that the next call for the same slide and model resumes
    (:mod:`segkit.engine.slide_resume`): tiles already done are not predicted again."""
    from segkit.engine.best_model import load_best_model, model_file_digest
    from segkit.engine.components import build_instancer, prediction_for
    from segkit.engine.runtime import import_tensorflow

    started = time.monotonic()
    target = model_microns_per_pixel(project)
    instancer = build_instancer(project, registry)  # a bad [instances] key costs nothing
    outputs = _outputs(slide_path, out_folder, overwrite, project)
    how = prediction_for(project)
    with planned_slide(project, slide_path, registry, target, microns_per_pixel, region) as setup:
        digest = model_digest or model_file_digest(project)
        key = resume_key(slide_path, digest, setup.level, setup.scale, setup.tiles, repr(how))
        checkpoints = SlideCheckpoints(partial_folder(outputs), key)
        try:
            nuclei = None if instancer is None else _nucleus_sink(project, instancer, outputs, setup, slide_path,
                                                                  checkpoints.folder / "nuclei-parts")
            width, height = setup.slide.level_dimensions[0]
            # the canvas reserves its space before the model loads: a full disk costs nothing
            with MaskCanvas(out_folder, width, height, keep_at=checkpoints.canvas) as canvas:
                if model is None:
                    import_tensorflow()
                    model = load_best_model(project, registry)
                _predict_into(canvas, setup, lambda batch: tile_softmax(model, batch, how), how.batch_size,
                              project.classes.num_classes, progress, () if nuclei is None else (nuclei,), checkpoints)
                canvas.save_pyramid(outputs.mask, microns_per_pixel=(setup.mpp[0] + setup.mpp[1]) / 2,
                                    uuid=mask_uuid(key))
            write_tissue_png(outputs.tissue, setup.tissue.mask)
        except BaseException:
            checkpoints.failed()
            raise
    result = SlideResult(outputs, setup.level, setup.scale, len(setup.tiles), setup.tissue.area_mm2(setup.mpp, region),
                         time.monotonic() - started, region, checkpoints.tiles_resumed,
                         nuclei=0 if nuclei is None else nuclei.count,
                         nuclei_per_class={} if nuclei is None else nuclei.nuclei_per_class())
    write_slide_record(outputs, result.summary_row(slide_path), digest)
    checkpoints.finished()
    return result


class planned_slide:
    """The slide opened, its level chosen and its tissue tiles listed; closes the slide on exit."""

    def __init__(self, project: Project, path: Path, registry: Registry, target: float,
                 override: float | tuple[float, float] | None, region: tuple[int, int, int, int] | None) -> None:
        slide = open_slide(path, registry, microns_per_pixel=override)
        try:
            mpp = require_microns_per_pixel(slide, path, SLIDE_MPP_HINT)
            level, scale = choose_level(slide, target, source=path)
            section = project.slides
            tissue = tissue_mask(slide, path, method=section.tissue,  # type: ignore[arg-type]
                                 min_side=section.tissue_side, min_tissue_area=section.min_tissue_area,
                                 max_hole_area=section.max_hole_area)
            tiles = tile_grid(slide, level, scale, (project.model.image_width, project.model.image_height),
                              section.overlap, tissue, region, source=path)
        except BaseException:
            slide.close()
            raise
        self.setup = _Setup(slide, mpp, level, scale, tissue, tiles)

    def __enter__(self) -> _Setup:
        return self.setup

    def __exit__(self, *exc_info: object) -> None:
        self.setup.slide.close()


def mask_uuid(resume_key: Mapping[str, Any]) -> str:
    """The mask file's OME UUID, from what made it (slide name and size, model, level, tiles, settings; not
    the file's time, which a copy changes): the same slide segmented by the same model gets the same
    bytes wherever it runs (a cohort's worker or not)."""
    import json
    import uuid

    made_by = {key: value for key, value in resume_key.items() if key != "slide_mtime_ns"}
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "segkit-mask:" + json.dumps(made_by, sort_keys=True, default=str)))


def model_microns_per_pixel(project: Project) -> float:
    mpp = project.model.microns_per_pixel
    if mpp is None:
        raise ProjectError(str(project.source), "model.microns_per_pixel",
                           "not set, so the level a slide is read at is unknown",
                           "set it to the µm per pixel of the images the model was trained on")
    return mpp


def project_slide_outputs(project: Project, slide: Path, folder: Path) -> SlideOutputs:
    """What ``slide`` writes into ``folder`` under this project: its nuclei too with ``[instances]``
    (a Parquet table when pyarrow is installed, else CSV)."""
    instances = project.instances
    return slide_outputs(slide, folder, nuclei=instances is not None,
                         compress_geojson=instances is not None and instances.compress_geojson,
                         parquet=parquet_available())


def _outputs(slide_path: Path, out_folder: Path, overwrite: bool, project: Project) -> SlideOutputs:
    """The outputs of ``slide_path`` in ``out_folder``, refused when already there."""
    if not out_folder.is_dir():
        raise DataError(f"{out_folder}: no such folder (create it or choose another output folder)")
    outputs = project_slide_outputs(project, slide_path, out_folder)
    there = [path for path in outputs.every() if path.exists() or path.is_symlink()]
    if there and not overwrite:
        raise DataError(f"{there[0]}: already exists (move it, choose another output folder, or overwrite it)")
    return outputs


def _nucleus_sink(project: Project, instancer: Any, outputs: SlideOutputs, setup: _Setup,
                  slide_path: Path, work: Path) -> NucleusSink:
    """The sink that finds the slide's nuclei on the level read, writing to ``outputs`` through part
    files in ``work`` (inside the slide's partial folder, so an interrupted slide keeps them)."""
    from segkit.engine.slide_nuclei import NucleusPlan, NucleusSink, window_sides

    assert project.instances is not None and outputs.detections is not None and outputs.table is not None
    downsample = setup.slide.level_downsamples[setup.level]
    margin, strip, chunk = window_sides(setup.tiles)
    plan = NucleusPlan(instancer, project.instances.name, project.classes, slide_path.name,
                       setup.slide.level_dimensions[setup.level], downsample,
                       (setup.mpp[0] + setup.mpp[1]) / 2 * downsample, margin, strip, chunk, outputs.detections,
                       outputs.table, project.instances.compress_geojson, work)
    return NucleusSink(plan)


def tile_softmax(model: Any, tiles: Sequence[np.ndarray], how: Prediction) -> list[np.ndarray]:
    """Softmax ``(read_height, read_width, K)`` of each tile, through the model at its input size,
    exactly as ``segkit infer`` predicts a resized image."""
    from segkit.engine.predict import resized_softmax

    return resized_softmax(model, tiles, how)


def _batches(tiles: list[Tile], size: int) -> list[list[Tile]]:
    """Full batches of tiles in raster order, across grid rows (only the last one short): the model
    meets one batch shape, and a short batch per grid row would cost a full one's time."""
    return [tiles[i:i + size] for i in range(0, len(tiles), size)]


def _read_ahead(slide: CheckedSlide, batches: list[list[Tile]]) -> Iterator[tuple[list[Tile], list[np.ndarray]]]:
    """Each batch with its pixels, the next one read by a thread while the caller predicts this one."""
    def read(batch: list[Tile]) -> list[np.ndarray]:
        return [slide.read_region(t.level, t.x, t.y, t.read_width, t.read_height) for t in batch]

    if not batches:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(read, batches[0])
        for n, batch in enumerate(batches):
            pixels = pending.result()
            if n + 1 < len(batches):
                pending = pool.submit(read, batches[n + 1])
            yield batch, pixels


def _predict_into(canvas: MaskCanvas, setup: _Setup, predict: Callable[[list[np.ndarray]], list[np.ndarray]],
                  batch_size: int, classes: int, progress: Progress | None = None,
                  sinks: Sequence[RowSink] = (), checkpoints: SlideCheckpoints | None = None) -> None:
    """Every tissue tile predicted, blended in the band and its finished rows handed to the class
    mask's sink (into ``canvas``) and to ``sinks``, row by row; with ``checkpoints``, the tiles a
    checkpoint holds are skipped (the band and sinks restored from it) and new checkpoints saved as due."""
    slide, level = setup.slide, setup.level
    downsample = slide.level_downsamples[level]
    level_size = slide.level_dimensions[level]
    with ThreadPoolExecutor(max_workers=1) as writer:
        band = _Band([MaskSink(canvas, level_size[0], downsample), *sinks], level_size, setup.tiles, classes, writer)
        done = 0
        if checkpoints is not None and checkpoints.tiles_resumed:
            band.load_state(checkpoints.state_folder())
            done = checkpoints.tiles_resumed
        for batch, pixels in _read_ahead(slide, _batches(setup.tiles[done:], batch_size)):
            for tile, softmax, rgb in zip(batch, predict(pixels), pixels):
                band.advance_to(level_origin(tile.y, downsample))  # a batch may end one grid row, start the next
                band.add(level_origin(tile.x, downsample), softmax, rgb)
            done += len(batch)
            if checkpoints is not None and checkpoints.due():
                band.drain()  # the canvas and the sinks hold every row flushed so far
                checkpoints.save(done, canvas.sync, band.save_state)
            if progress is not None:
                progress(done, len(setup.tiles))
        band.flush_all()
        band.drain()
    for sink in sinks:
        sink.finish()


class _Band:
    """The weighted softmax sums of the level rows ``top .. top + rows`` (every column of the level),
    and the RGB of those rows where tiles landed.

    Finished rows go to the sinks on ``writer``'s thread, while the model predicts the next batch
    (argmax, pwrite, the instancer: NumPy and scikit-image release the GIL for much of it); one
    hand-over at a time, so at most one flushed block is held beside the band.
    """

    def __init__(self, sinks: Sequence[RowSink], level_size: tuple[int, int], tiles: list[Tile],
                 classes: int, writer: ThreadPoolExecutor | None = None) -> None:
        from segkit.engine.sliding_window import gaussian_weights

        self.sinks = sinks
        self.width, self.height = level_size
        self.rows = max((t.read_height for t in tiles), default=1)
        tile_width = max((t.read_width for t in tiles), default=1)
        self.weights = gaussian_weights(self.rows, tile_width)
        self.total = np.zeros((self.rows, self.width, classes), np.float32)
        self.norm = np.zeros((self.rows, self.width, 1), np.float32)
        self.pixels = np.zeros((self.rows, self.width, 3), np.uint8)
        self.top = 0
        self.writer = writer
        self._handed: Future[None] | None = None

    def add(self, column: int, softmax: np.ndarray, pixels: np.ndarray) -> None:
        """A tile's softmax and RGB whose top-left pixel is level column ``column``, row ``top``."""
        height, width = softmax.shape[:2]
        x0, x1 = max(column, 0), min(column + width, self.width)
        part = slice(x0 - column, x1 - column)
        weights = self.weights[:height, :width][:, part]
        self.total[:height, x0:x1] += softmax[:, part] * weights
        self.norm[:height, x0:x1] += weights
        self.pixels[:height, x0:x1] = pixels[:height, part]

    def advance_to(self, row: int) -> None:
        """Flush the rows above level row ``row`` (no tile still to come covers them) and move the band."""
        if row <= self.top:
            return
        done = min(row - self.top, self.rows)
        self._flush(done)
        for array in (self.total, self.norm, self.pixels):
            array[: self.rows - done] = array[done:].copy()
            array[self.rows - done:] = 0
        self.top = row

    def flush_all(self) -> None:
        self._flush(self.rows)

    def save_state(self, folder: Path) -> None:
        """The band's pending sums, pixels and place, and each sink's state, for a checkpoint
        (:mod:`segkit.engine.slide_resume`); the mask's sink keeps nothing beyond the canvas."""
        self.drain()
        np.savez(folder / "band.npz", total=self.total, norm=self.norm, pixels=self.pixels, top=np.int64(self.top))
        for number, sink in enumerate(self.sinks):
            sink.save_state(folder / f"sink-{number}")

    def load_state(self, folder: Path) -> None:
        with np.load(folder / "band.npz") as state:
            self.total[...], self.norm[...], self.pixels[...] = state["total"], state["norm"], state["pixels"]
            self.top = int(state["top"])
        for number, sink in enumerate(self.sinks):
            sink.load_state(folder / f"sink-{number}")

    def _flush(self, count: int) -> None:
        """The band's first ``count`` rows, normalised (0 where no tile covered them), to every sink."""
        count = min(count, self.height - self.top)
        if count <= 0:
            return
        norm = self.norm[:count]
        softmax = np.divide(self.total[:count], norm, out=np.zeros_like(self.total[:count]), where=norm > 0)
        top, pixels = self.top, self.pixels[:count].copy()  # the band's own rows move on

        def take() -> None:
            for sink in self.sinks:
                sink.take(top, softmax, pixels)

        self.drain()
        if self.writer is None:
            take()
        else:
            self._handed = self.writer.submit(take)

    def drain(self) -> None:
        """Wait for the rows handed to the sinks (raising what a sink raised)."""
        handed, self._handed = self._handed, None
        if handed is not None:
            handed.result()
