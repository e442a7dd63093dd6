"""Seams: a slide's nuclei through tiles, blending and instancer windows, against the whole picture at once.

    python benchmarks/bench_slide_seams.py [--work /tmp/segkit-seams] [--side 1024] [--epochs 3]

1. ``segkit train projects/demo.toml`` (FlexUNet on synthetic-he tiles of 128 px) for ``--epochs``
   epochs into ``<work>/run`` (skipped when that run already has a best model);
2. a ``side`` x ``side`` synthetic-he picture framed by 64 px of glass (tests/slide_files.py's
   ``synthetic_slide``: tiles cut where the tissue ends, nuclei touching at the tiles' seams);
3. **whole**: the same model rebuilt for a ``side`` x ``side`` input (FlexUNet is fully
   convolutional; the trained weights copied in), so the picture goes through it in ONE call, and
   the instancer on that softmax in one window: no seam anywhere;
4. **slide**: the picture written as an Aperio-style pyramid (0.5 µm per pixel, the demo model's
   pixel size given as 0.5 too, so level 0 is read at scale 1) and segmented by
   ``segment_slide`` with ``[instances]``: 128 px tissue tiles overlapping by ``[slides] overlap``,
   Gaussian blending, nuclei found in windows with a margin and kept by the window owning their
   centroid;
5. **slide, one window**: the same, the instancer's window as large as the level: the slide's own
   blended softmax with no window seam, which tells the tiles' share of a difference (the model sees
   less context at a tile's edge) from the windows' (which should add none);
6. nucleus count and total nucleus area (pixels) of each, and their ratios; the goal (issue 27):
   slide and whole equal within 0.5%.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT / "tests")]

from benchkit.clock import load_average  # noqa: E402
from benchkit.tables import machine  # noqa: E402

PROJECT = ROOT / "projects" / "demo.toml"
MICRONS_PER_PIXEL = 0.5


def overrides(work: Path, instancer: str, extra: tuple[str, ...] = ()) -> list[str]:
    tiles = work / "run" / "synthetic-he" / "test" / "images"
    return [f"project.output_dir={work / 'run'}", f"callbacks.0.images={tiles}", f"infer.images={tiles}",
            f"model.microns_per_pixel={MICRONS_PER_PIXEL}", f"instances.name='{instancer}'", *extra]


def train(work: Path, epochs: int, instancer: str) -> float:
    """``segkit train`` of the demo for ``epochs`` epochs (its tiles generated first); wall seconds."""
    if (work / "run" / "models" / "best_model.keras").exists():
        return 0.0
    started = time.perf_counter()
    sets = [part for value in overrides(work, instancer, (f"train.epochs={epochs}",)) for part in ("--set", value)]
    subprocess.run([sys.executable, "-c", "from segkit.cli.main import main; main()", "train", str(PROJECT),
                    "--quiet", "--overwrite", *sets], check=True)
    return time.perf_counter() - started


def whole_picture(project: Any, registry: Any, model: Any, picture: Any) -> tuple[int, int, float]:
    """(nuclei, their pixels, seconds) of the picture through the model rebuilt at its size, one call."""
    import dataclasses

    import numpy as np

    from segkit.engine.components import build_instancer, build_model
    from segkit.engine.predict import resized_softmax
    from segkit.engine.prediction import Prediction
    from segkit.objects.classify import checked_instances

    height, width = picture.shape[:2]
    started = time.perf_counter()
    sized = dataclasses.replace(project, model=dataclasses.replace(project.model, image_width=width,
                                                                   image_height=height))
    whole = build_model(sized, registry)
    whole.set_weights(model.get_weights())
    softmax = resized_softmax(whole, [picture], Prediction(height, width, batch_size=1))[0]
    found = checked_instances(build_instancer(project, registry)(softmax, picture), softmax.shape,
                              project.instances.name, "whole")
    return found.count, int(np.count_nonzero(found.labels)), time.perf_counter() - started


def slide_nuclei(project: Any, registry: Any, model: Any, slide: Path, out: Path, one_window: bool = False
                 ) -> tuple[int, float, float, int]:
    """(nuclei, their pixels, seconds, nuclei cut by a window edge) of the slide through segment_slide;
    ``one_window``: the instancer's window as large as the level (no window seam at all)."""
    import shutil

    import pyarrow.parquet as pq

    from segkit.engine import slide_nuclei as nuclei
    from segkit.engine.slide_infer import segment_slide

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    sides, sink_class, sinks = nuclei.window_sides, nuclei.NucleusSink, []

    class Recorded(sink_class):  # type: ignore[misc, valid-type]
        def __init__(self, plan: Any) -> None:
            super().__init__(plan)
            sinks.append(self)

    nuclei.NucleusSink = Recorded  # type: ignore[misc]
    if one_window:
        nuclei.window_sides = lambda tiles: (0, 1 << 30, 1 << 30)  # type: ignore[assignment]
    started = time.perf_counter()
    try:
        result = segment_slide(project, slide, out, registry, model=model)
    finally:
        nuclei.window_sides, nuclei.NucleusSink = sides, sink_class  # type: ignore[misc]
    seconds = time.perf_counter() - started
    areas = pq.read_table(result.outputs.table, columns=["area_um2"]).column("area_um2").to_pylist()
    return result.nuclei, sum(areas) / MICRONS_PER_PIXEL**2, seconds, sinks[0].cut


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/segkit-seams"))
    parser.add_argument("--side", type=int, default=1024, help="picture side in pixels (a multiple of 16)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--instancer", default="watershed")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    trained = train(args.work, args.epochs, args.instancer)

    from segkit.engine.best_model import load_best_model
    from segkit.engine.runtime import import_tensorflow
    from segkit.plugins import get_registry
    from segkit.project import load_project
    from slide_files import synthetic_slide, write_pyramid

    registry = get_registry()
    project = load_project(PROJECT, overrides(args.work, args.instancer), registry)
    import_tensorflow()
    model = load_best_model(project, registry)
    picture, _, truth = synthetic_slide(args.side, args.side, seed=args.seed, tile=128, margin=64)
    whole = whole_picture(project, registry, model, picture)
    slide = args.work / "seams.svs"
    write_pyramid(slide, picture, style="aperio", microns_per_pixel=MICRONS_PER_PIXEL, tile=256, levels=3)
    tiled = slide_nuclei(project, registry, model, slide, args.work / "slide-out")
    blended = slide_nuclei(project, registry, model, slide, args.work / "one-window-out", one_window=True)
    print(f"machine: {machine()}; load average {load_average()}; training {trained:.0f} s ({args.epochs} epochs)")
    print(f"picture {args.side}x{args.side} (64 px glass frame), {int(truth.max())} true nuclei, "
          f"instancer {args.instancer}, [slides] overlap {project.slides.overlap}")
    print("| | whole picture, one model call | slide: tiles + windows | slide / whole "
          "| slide's blended softmax, one window | slide / one window |")
    print("|---|---|---|---|---|---|")
    print(f"| nuclei | {whole[0]} | {tiled[0]} | {tiled[0] / whole[0]:.4f} | {blended[0]} | "
          f"{tiled[0] / blended[0]:.4f} |")
    print(f"| total nucleus area (px) | {whole[1]} | {tiled[1]:.0f} | {tiled[1] / whole[1]:.4f} | {blended[1]:.0f} | "
          f"{tiled[1] / blended[1]:.4f} |")
    print(f"| seconds | {whole[2]:.1f} | {tiled[2]:.1f} | | {blended[2]:.1f} | |")
    print(f"nuclei kept that touched a window's edge inside the slide (wider than twice the margin): {tiled[3]}")


if __name__ == "__main__":
    main()
