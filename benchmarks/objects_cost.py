"""What objects cost at inference: post-processing time per megapixel next to the model's own.

    python benchmarks/objects_cost.py [--work /tmp/segkit-objects-ucsb] [--rounds 5] [--instancer watershed]

On the UCSB test images (896x768) and the model that ``objects_ucsb.py`` trained into ``--work``
(``projects/ucsb-bcc.toml``: 128-px tiles, half overlap, flip TTA, as ``segkit infer`` runs it):

* A, the model: ``engine.predict.probabilities`` on every image (softmax at full resolution);
* B, post-processing, what ``segkit infer`` adds for ``[instances]``: the instancer on that softmax,
  the per-nucleus table (``objects.measure.nucleus_table``, written as CSV, and Parquet when
  pyarrow imports) and the QuPath GeoJSON (``objects.geojson_out.write_detections``).

A B A B in one process (TensorFlow warmed up by one untimed model pass first), ``--rounds`` rounds;
the figures are medians over rounds, in seconds per megapixel of image. Goal (issue 26): B <= 0.5 A.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from benchkit.clock import load_average  # noqa: E402
from benchkit.tables import machine, median, table  # noqa: E402
from objects_common import build_instancer  # noqa: E402
from objects_ucsb import read_pair, stems, ucsb_project  # noqa: E402

STEPS = ("instancer", "table (CSV + Parquet)", "GeoJSON")


def post_process(instancer: Any, classes: Any, images: dict[str, np.ndarray], softmax: dict[str, np.ndarray],
                 out: Path) -> tuple[dict[str, float], int]:
    """Instances, table and GeoJSON of every image into ``out``: seconds of each step, nuclei found."""
    from segkit.objects.geojson_out import write_detections
    from segkit.objects.measure import nucleus_columns, nucleus_table, write_table

    seconds = dict.fromkeys(STEPS, 0.0)
    nuclei = 0
    for name, image in images.items():
        started = time.perf_counter()
        instances = instancer(softmax[name], image)
        tabled = time.perf_counter()
        rows = nucleus_table(name, image, instances, classes, None)
        write_table(out / name, rows, nucleus_columns(None))
        written = time.perf_counter()
        nuclei += write_detections(out / f"{name}.geojson", instances, classes, rows, False)
        for step, (start, end) in zip(STEPS, ((started, tabled), (tabled, written), (written, time.perf_counter()))):
            seconds[step] += end - start
    return seconds, nuclei


def measure(args: argparse.Namespace) -> tuple[list[float], list[dict[str, float]], int, float]:
    """Model seconds and post-processing seconds by step, per round; nuclei found; megapixels."""
    from segkit.engine import components
    from segkit.engine.best_model import load_best_model
    from segkit.engine.predict import probabilities
    from segkit.engine.runtime import import_tensorflow

    prepared = args.work / "prepared"
    project, registry = ucsb_project(args.work)
    import_tensorflow()
    model = load_best_model(project, registry)
    how = components.prediction_for(project)
    images = {stem: read_pair(prepared, "test", stem)[0] for stem in stems(prepared, "test")}
    instancer = build_instancer(args.instancer, project.classes)
    softmax = dict(zip(images, probabilities(model, list(images.values()), how)))  # warm-up, untimed
    model_s: list[float] = []
    post_s: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.rounds):
            started = time.perf_counter()
            softmax = dict(zip(images, probabilities(model, list(images.values()), how)))
            model_s.append(time.perf_counter() - started)
            seconds, nuclei = post_process(instancer, project.classes, images, softmax, Path(scratch))
            post_s.append(seconds)
    megapixels = sum(image.shape[0] * image.shape[1] for image in images.values()) / 1e6
    return model_s, post_s, nuclei, megapixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/segkit-objects-ucsb"),
                        help="the --work folder of a finished objects_ucsb.py run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--instancer", default="watershed")
    args = parser.parse_args()
    if not (args.work / "segkit-run").is_dir():
        print(f"{args.work / 'segkit-run'}: missing: run benchmarks/objects_ucsb.py --work {args.work} first",
              file=sys.stderr)
        sys.exit(2)
    load_before = load_average()
    model_s, post_s, nuclei, megapixels = measure(args)
    model = median(model_s) / megapixels
    post = median([sum(seconds.values()) for seconds in post_s]) / megapixels
    print(f"\nmachine: {machine()}; load average before/after {load_before} / {load_average()}")
    print(f"{len(stems(args.work / 'prepared', 'test'))} images, {megapixels:.2f} MP, {nuclei} nuclei; "
          f"{args.rounds} rounds A B A B; medians over rounds")
    rows = [["model (tiles + flip TTA)", model, model / model],
            *([f"  {step}", median([seconds[step] for seconds in post_s]) / megapixels,
               median([seconds[step] for seconds in post_s]) / megapixels / model] for step in STEPS),
            [f"post-processing ({args.instancer} + table + GeoJSON)", post, post / model]]
    print(table(rows, ["step", "s per MP", "x model"]))
    print(f"post-processing / model = {post / model:.3f} (goal <= 0.5)")

if __name__ == "__main__":
    main()
