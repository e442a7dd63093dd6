"""synthetic-he as objects: the ``watershed`` instancer against ``connected-components`` on one model.

    python benchmarks/objects_synthetic.py [--work /tmp/segkit-objects-synthetic] [--score-only]

1. ``segkit train projects/demo.toml`` (FlexUNet, 320 synthetic-he tiles of 128 px, 12 epochs), timed;
2. the best model's softmax on the 64 held-out test tiles (``engine.predict.probabilities``, in a
   worker process: the scoring side never imports TensorFlow);
3. the truth: each test tile rendered again by ``generate_tile_with_instances`` from its seed (the
   image checked equal to the PNG the model saw), so every nucleus has its exact id, touching
   malignant nuclei included; an object's class is the majority class of its pixels;
4. both instancers on the same softmax, and on the TRUE class mask given as a one-hot softmax
   (the ceiling: what a perfect semantic model would get from each instancer);
5. scored with ``segkit.objects.scoring``: detection F1 at IoU 0.5 and PQ per class and overall,
   over the split (counts summed over its tiles) and as per-tile means; where each loses
   (``objects_common.losses``). Goals (issue 26): PQ of ``watershed`` >= ``connected-components``
   + 0.10 on malignant, detection F1 >= 0.90 overall.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from benchkit.clock import load_average  # noqa: E402
from benchkit.tables import machine, table  # noqa: E402
from objects_common import build_instancer, losses  # noqa: E402

PROJECT = ROOT / "projects" / "demo.toml"
INSTANCERS = ("connected-components", "watershed")
CLASS_NAMES = {1: "benign", 2: "malignant"}


def overrides(work: Path) -> list[str]:
    tiles = work / "run" / "synthetic-he" / "test" / "images"
    return [f"project.output_dir={work / 'run'}", f"callbacks.0.images={tiles}", f"infer.images={tiles}"]


def load(work: Path) -> tuple[Any, Any]:
    from segkit.plugins import get_registry
    from segkit.project import load_project

    registry = get_registry()
    return load_project(PROJECT, overrides(work), registry), registry


def test_tiles(work: Path) -> list[Path]:
    return sorted((work / "run" / "synthetic-he" / "test" / "images").glob("*.png"))


def train(work: Path) -> float:
    """``segkit train`` (tiles generated first); returns its wall seconds."""
    started = time.perf_counter()
    sets = [part for value in overrides(work) for part in ("--set", value)]
    subprocess.run([sys.executable, "-c", "from segkit.cli.main import main; main()", "train", str(PROJECT),
                    "--quiet", "--overwrite", *sets], check=True)
    return time.perf_counter() - started


def predict(work: Path) -> None:
    """Worker: the best model's softmax on every test tile, into ``probabilities.npy`` (tile order)."""
    from segkit.engine import components
    from segkit.engine.best_model import load_best_model
    from segkit.engine.predict import probabilities
    from segkit.engine.runtime import import_tensorflow

    project, registry = load(work)
    import_tensorflow()
    model = load_best_model(project, registry)
    images = [np.asarray(Image.open(path).convert("RGB")) for path in test_tiles(work)]
    np.save(work / "probabilities.npy", np.stack(probabilities(model, images, components.prediction_for(project))))


def truth_tiles(work: Path, classes: Any) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``(image, class-index mask, truth labels, truth classes)`` of every test tile, rendered again
    from its seed; the image must equal the PNG on disk (else the seeds are not the test split's)."""
    from segkit.objects.labels import truth_objects
    from segkit_synthetic.he_tiles import TileSettings, generate_tile_with_instances

    keys = json.loads((work / "run" / "synthetic-he" / "settings.json").read_text(encoding="utf-8"))
    first = keys["splits"]["test"]["first_seed"]
    settings = TileSettings.from_class_table(classes, size=keys["settings"]["size"],
                                             malignant_fraction=keys["settings"]["malignant_fraction"],
                                             mixed_fraction=keys["settings"]["mixed_fraction"],
                                             nucleus_radius=keys["settings"]["nucleus_radius"])
    colours = np.array(settings.class_colors)
    tiles = []
    for index, path in enumerate(test_tiles(work)):
        image, rgb, instances = generate_tile_with_instances(first + index, settings)
        if not np.array_equal(image, np.asarray(Image.open(path).convert("RGB"))):
            raise SystemExit(f"{path}: is not the tile of seed {first + index}; delete {work} and run again")
        mask = np.argmax(np.all(rgb[:, :, None, :] == colours[None, None], axis=3), axis=2).astype(np.uint8)
        tiles.append((image, mask, *truth_objects(mask, instances, len(colours))))
    return tiles


def score(work: Path) -> dict[tuple[str, str], tuple[dict[str, float], dict[str, int]]]:
    """For (softmax source, instancer): the split's object figures and summed losses."""
    from segkit.objects.scoring import object_figures, score_image

    project, _ = load(work)
    softmax = np.load(work / "probabilities.npy")
    tiles = truth_tiles(work, project.classes)
    results = {}
    for name in INSTANCERS:
        instancer = build_instancer(name, project.classes)
        for source in ("model", "true mask"):
            scores, errors = [], []
            for (image, mask, truth, truth_classes), predicted in zip(tiles, softmax):
                given = predicted if source == "model" else np.eye(3, dtype=np.float32)[mask]
                found = instancer(given, image)
                scores.append(score_image(truth, truth_classes, found.labels, found.classes, None, [1, 2]))
                errors.append(losses(truth, found.labels))
            summed = {key: sum(row[key] for row in errors) for key in errors[0]}
            results[(source, name)] = (object_figures(scores, CLASS_NAMES), summed)
    return results


def report(work: Path) -> None:
    timing = json.loads((work / "timing.json").read_text(encoding="utf-8"))
    print(f"\nmachine: {machine()}")
    print(f"segkit train {PROJECT.name}: {timing['train_s'] / 60:.1f} min; load average before/after "
          f"{timing['load_before']} / {timing['load_after']}; scored now at load {load_average()}")
    results = score(work)
    figures = ("object_f1", "pq", "object_f1_benign", "pq_benign", "object_f1_malignant", "pq_malignant", "aji")
    for level, suffix in (("over the test split (counts summed over its 64 tiles)", ""),
                          ("per-tile means", "_image_mean")):
        print(f"\n{level}:")
        rows = [[source, name, *(found[f"{figure}{suffix}"] for figure in figures)]
                for (source, name), (found, _) in results.items()]
        print(table(rows, ["softmax", "instancer", "F1@0.5", "PQ", "F1 benign", "PQ benign", "F1 malignant",
                           "PQ malignant", "AJI"]))
    kinds = ("truth", "matched", "merged", "split", "missed", "poorly_outlined", "false_detections")
    print("\nwhere they lose (test tiles, all classes; see objects_common.py):")
    print(table([[source, name, *(summed[kind] for kind in kinds)] for (source, name), (_, summed) in results.items()],
                ["softmax", "instancer", *kinds]))
    model_cc, model_ws = results[("model", "connected-components")][0], results[("model", "watershed")][0]
    print(f"\ngoals: PQ malignant watershed - connected-components = "
          f"{model_ws['pq_malignant'] - model_cc['pq_malignant']:+.3f} (>= +0.10); "
          f"F1 overall watershed {model_ws['object_f1']:.3f} (>= 0.90)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/segkit-objects-synthetic"))
    parser.add_argument("--score-only", action="store_true", help="score the --work folder of an earlier run")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        predict(args.work)
        return
    if args.score_only and not (args.work / "timing.json").is_file():
        print(f"--score-only: {args.work / 'timing.json'} is missing: run without --score-only first", file=sys.stderr)
        sys.exit(2)
    if not args.score_only:
        before = load_average()
        seconds = train(args.work)
        subprocess.run([sys.executable, __file__, "--worker", "--work", str(args.work)], check=True)
        (args.work / "timing.json").write_text(json.dumps({"train_s": seconds, "load_before": before,
                                                           "load_after": load_average()}))
    report(args.work)


if __name__ == "__main__":
    main()
