"""The whole-slide benchmarks' pieces: large pyramidal test slides written tile by tile, the project
that segments them and its saved model, and ``segment_slide`` timed around the model.

A slide here is a periodic picture: one 1024 x 1024 synthetic-he mosaic (``tests/slide_files.py``)
repeated, glass (255) outside a tissue box. Rendering 400 megapixels of synthetic-he would take
longer than segmenting them; a repeated mosaic gives the reader, the codec and the model the same
work per tile. Each level is cut from the same level of the mosaic's own pyramid (2x2 means, as
``slide_files.pyramid_levels``), so no level is ever held whole: tifffile takes the tiles from a
generator. Layout as ``slide_files``' ``"aperio"`` (an SVS-like JPEG TIFF, OpenSlide's aperio driver).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "tests") not in sys.path:
    sys.path.append(str(ROOT / "tests"))  # the test slides' layout (tests/slide_files.py) and the tiny project

from benchkit.tables import machine  # noqa: E402
from benchkit.workers import add_worker_options, ran_as_worker, worker  # noqa: E402
from slide_files import GLASS, JPEG_QUALITY, aperio_description, halve, pyramid_levels, synthetic_slide  # noqa: E402

#: side of the repeated synthetic-he mosaic (a multiple of every level's 2**k, so each level repeats exactly)
MOSAIC = 1024
#: the smoke runs' mosaic (4 synthetic-he tiles to render instead of 64)
SMOKE_MOSAIC = 256
#: the slide's pixel size (µm), as a 20x scan
SLIDE_MPP = 0.5
#: level-0 box of tissue ``(x0, y0, x1, y1)``; glass elsewhere
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class ModelSpec:
    """A FlexUNet saved as the run's best model (untrained, seeded: speed does not depend on the weights)."""

    side: int
    num_layers: int
    base_filters: int
    base_kernels: int = 3

    def describe(self) -> str:
        return (f"FlexUNet {self.side}x{self.side}, num_layers {self.num_layers}, base_filters {self.base_filters}, "
                f"{self.base_kernels}x{self.base_kernels} first kernels")


#: the benchmarks' FlexUNet (benchkit.project: 7.8 M parameters, 9.9 GFLOP a 256x256 tile)
BENCH_MODEL = ModelSpec(256, 6, 16, 7)
#: a small real U-Net, so that 400 megapixels finish in minutes on 2 cores
SMALL_MODEL = ModelSpec(256, 3, 8, 3)
#: the smoke tests' model
SMOKE_MODEL = ModelSpec(64, 2, 4, 3)
MODELS = {"bench": BENCH_MODEL, "small": SMALL_MODEL, "smoke": SMOKE_MODEL}


def slide_levels(width: int, height: int, tile: int = 256) -> int:
    """Levels down to one whose long side fits in a few tiles (as scanners stop), at most 7."""
    return max(1, min(7, 1 + math.ceil(math.log2(max(width, height) / (4 * tile)))))


@functools.lru_cache(maxsize=2)
def mosaic_picture(side: int, seed: int) -> np.ndarray:
    """The repeated picture: synthetic-he tiles of 128 pixels, ``side`` square (rendered once a process)."""
    return synthetic_slide(side, side, seed=seed, margin=0)[0]


def write_slide(path: Path, width: int, height: int, tissue: Box | None = None, *, seed: int = 3,
                tile: int = 256, mosaic_side: int = MOSAIC) -> Path:
    """A ``width`` x ``height`` SVS-like slide at :data:`SLIDE_MPP`; tissue inside ``tissue`` (everywhere
    when None). ``mosaic_side`` (a multiple of 2**levels) is the period of the repeated picture."""
    import tifffile

    levels = slide_levels(width, height, tile)
    mosaic = pyramid_levels(mosaic_picture(mosaic_side, seed), levels)
    box = tissue or (0, 0, width, height)
    description = aperio_description(width, height, tile, SLIDE_MPP, "jpeg")
    options: dict[str, Any] = {"tile": (tile, tile), "photometric": "rgb", "compression": "jpeg",
                               "compressionargs": {"level": JPEG_QUALITY}, "description": description,
                               "metadata": None, "dtype": np.uint8}
    with tifffile.TiffWriter(path, bigtiff=False) as tiff:
        for level in range(levels):
            shape = (-(-height // 2**level), -(-width // 2**level), 3)
            tiff.write(_level_tiles(mosaic[level], shape, [v // 2**level for v in box], tile), shape=shape, **options)
            if level == 0:  # an SVS's second directory is its thumbnail (see slide_files._write_aperio)
                tiff.write(halve(mosaic[-1]), description="Aperio Image Library thumbnail", metadata=None,
                           photometric="rgb", compression="zlib")
    return path


def _level_tiles(mosaic: np.ndarray, shape: tuple[int, int, int], box: list[int], tile: int) -> Iterator[np.ndarray]:
    """The level's tiles in TIFF order, each cut from the repeated mosaic, glass outside ``box``."""
    period = mosaic.shape[0]
    x0, y0, x1, y1 = box
    for y in range(0, shape[0], tile):
        for x in range(0, shape[1], tile):
            rows, columns = np.arange(y, y + tile), np.arange(x, x + tile)
            pixels = mosaic[np.ix_(rows % period, columns % period)]
            inside = ((rows >= y0) & (rows < y1))[:, None] & ((columns >= x0) & (columns < x1))[None, :]
            yield np.where(inside[..., None], pixels, np.uint8(GLASS))


def write_slide_project(folder: Path, spec: ModelSpec, *, model_mpp: float = SLIDE_MPP, batch_size: int = 8,
                        images: Path | None = None) -> Path:
    """The tiny test project (``tests/tiny_data.py``) with ``spec``'s model at ``model_mpp`` µm per pixel,
    ``[slides]`` at its defaults and ``[infer]`` on ``images``; returns the project file."""
    from tiny_data import tiny_project, write_tiny_project

    model = dict(tiny_project()["model"], image_width=spec.side, image_height=spec.side, num_layers=spec.num_layers,
                 base_filters=spec.base_filters, base_kernels=spec.base_kernels, microns_per_pixel=model_mpp)
    infer = {"images": str(images or folder / "data" / "infer"), "batch_size": batch_size}
    return write_tiny_project(folder, model=model, infer=infer)


def load_slide_project(path: Path, overrides: list[str] | None = None) -> tuple[Any, Any]:
    from segkit.plugins import get_registry
    from segkit.project import load_project

    registry = get_registry()
    return load_project(path, overrides or [], registry), registry


def ensure_model(project: Any, registry: Any) -> None:
    """Build and save the project's model as its run's best model, seeded, unless one is there."""
    from segkit.engine import components
    from segkit.engine.runtime import import_tensorflow, seed_everything
    from segkit.run_folder import BEST_MODEL

    path = project.output_dir / BEST_MODEL
    if path.exists():
        return
    import_tensorflow()
    seed_everything(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    components.build_model(project, registry).save(path)


class ModelClock:
    """Wall time and this process's CPU time (all threads) spent inside the model calls of one run:
    ``wrap`` a predict function to count it. On a shared machine the CPU time moves much less."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.calls = 0

    def wrap(self, predict: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started, cpu = time.perf_counter(), time.process_time()
            try:
                return predict(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.cpu_seconds += time.process_time() - cpu
                self.calls += 1

        return timed

    def figures(self, started: float, cpu: float) -> dict[str, float]:
        """The call's wall and CPU seconds since ``started`` / ``cpu``, and the model's share of them."""
        return {"seconds": round(time.perf_counter() - started, 3), "cpu_s": round(time.process_time() - cpu, 3),
                "model_s": round(self.seconds, 3), "model_cpu_s": round(self.cpu_seconds, 3)}


def timed_segment_slide(project: Any, registry: Any, slide: Path, out: Path, model: Any = None) -> dict[str, Any]:
    """``segment_slide`` of ``slide`` into ``out`` (a fresh folder) with the loaded ``model`` (loaded
    by segment_slide when None), timing its calls of the model.

    The model time is what ``slide_infer.tile_softmax`` takes (the compiled predict, resizes
    included), counted by wrapping that module function for this one call."""
    from segkit.engine import slide_infer

    clock = ModelClock()
    real = slide_infer.tile_softmax
    slide_infer.tile_softmax = clock.wrap(real)  # type: ignore[assignment]
    out.mkdir(parents=True, exist_ok=True)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        result = slide_infer.segment_slide(project, slide, out, registry, model=model)
        figures = clock.figures(started, cpu)
    finally:
        slide_infer.tile_softmax = real  # type: ignore[assignment]
    return {**figures, "tiles": result.tiles, "level": result.level,
            "tissue_mp": round(result.tissue_mm2 / (SLIDE_MPP**2 * 1e-6) / 1e6, 3)}


def grid_tiles(project: Any, registry: Any, slide: Path, tissue: Box | None) -> int:
    """How many tiles the grid has where ``tissue`` (the box the slide was written with) is: what
    ``segment_slide`` should read when its tissue mask finds exactly that box."""
    from segkit.slides.grid import choose_level, tile_grid
    from segkit.slides.open_slide import open_slide
    from segkit.slides.tissue import TissueMask

    with open_slide(slide, registry) as opened:
        width, height = opened.level_dimensions[0]
        x0, y0, x1, y1 = tissue or (0, 0, width, height)
        step = 16  # a mask pixel spans 16 level-0 pixels, as a tissue level would
        mask = np.zeros((-(-height // step), -(-width // step)), bool)
        mask[y0 // step:-(-y1 // step), x0 // step:-(-x1 // step)] = True
        level, scale = choose_level(opened, project.model.microns_per_pixel, source=slide)
        size = (project.model.image_width, project.model.image_height)
        return len(tile_grid(opened, level, scale, size, project.slides.overlap, TissueMask(mask, 0, step),
                             source=slide))


def measured(script: Path, argv: list[str], inline: Callable[[list[str]], None] | None = None) -> dict[str, Any]:
    """A worker's RESULT: from a fresh process running ``script --worker argv``, or (``--smoke``, where
    one TensorFlow start per script keeps the smoke test short) from ``inline(argv)`` in this one."""
    if inline is None:
        return worker(script, argv)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        inline(argv)
    lines = [line for line in printed.getvalue().splitlines() if line.startswith("RESULT ")]
    return dict(json.loads(lines[-1][len("RESULT "):]))


#: a worker's side: what a benchmark's ``run_worker(args)`` does in a fresh process
RunWorker = Callable[[argparse.Namespace], None]


#: the smoke runs' slide side (with ``--slide-side``) and rounds
SMOKE_SIDE = 768


def slide_parser(description: str, *, model: str, model_mpp: float, slide_side: int | None = None
                 ) -> argparse.ArgumentParser:
    """The options every slide benchmark takes: ``--smoke``, ``--model``, ``--model-mpp`` and the workers';
    with ``slide_side``, ``--slide-side`` (that default) and ``--rounds``."""
    parser = argparse.ArgumentParser(description=description)
    if slide_side is not None:
        parser.add_argument("--slide-side", type=int, default=slide_side, help="the slide's side at level 0")
        parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny slides and model, every run in this process (checks the script runs; no figures)")
    parser.add_argument("--model", choices=sorted(MODELS), default=model)
    parser.add_argument("--model-mpp", type=float, default=model_mpp, help="the model's µm per pixel")
    add_worker_options(parser)
    return parser


def started(parser: argparse.ArgumentParser, run_worker: RunWorker
            ) -> tuple[argparse.Namespace, Callable[[list[str]], None] | None] | None:
    """The parsed options and, for ``--smoke``, the in-process stand-in for a worker (see :func:`measured`);
    None when this process was a worker and has done its part. Prints the machine line."""
    args = parser.parse_args()
    if ran_as_worker(args, run_worker):
        return None
    if args.smoke:
        args.model = "smoke"
        if "slide_side" in args:
            args.slide_side, args.rounds = SMOKE_SIDE, 1
    print(machine())
    return args, (lambda argv: run_worker(parser.parse_args(["--worker", *argv]))) if args.smoke else None


def alternated(script: Path, option: str, names: tuple[str, ...], folder: Path, rounds: int,
               inline: Callable[[list[str]], None] | None, note: Callable[[dict[str, Any]], str] = lambda _: ""
               ) -> dict[str, list[dict[str, Any]]]:
    """Each of ``names`` (``script --worker <option> NAME --folder folder``) once a round, A B A B; every
    run printed as it ends (``note`` adds to its line)."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in names:
            result = measured(script, [option, name, "--folder", str(folder)], inline)
            results[name].append(result)
            print(f"[round {round_ + 1}] {name:8s} {result['seconds']:7.2f} s, model {result['model_s']:7.2f} s, "
                  f"{result['tiles']} tiles{note(result)} (load {result['load']})", flush=True)
    return results
