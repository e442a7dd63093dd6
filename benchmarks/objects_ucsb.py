"""UCSB breast-cancer-cell sample as objects: segkit vs a classical baseline vs StarDist, on the outlined nuclei.

    python benchmarks/objects_ucsb.py [--data ../shared/data/ucsb-bcc-sample] [--work /tmp/segkit-objects-ucsb]
                                      [--budget-minutes 10] [--split-seed 0] [--score-only]

1. ``segkit prepare ucsb-bcc`` split by tissue core (``test_ratio`` 0.43: 3 of the 7 cores for test,
   1 for validation, 3 for training), everything farther than 16 px from an expert's outline
   marked ignore (``ignore_region=nuclei``), as ``bench_ucsb.py`` prepares it;
2. **segkit**: ``segkit train projects/ucsb-bcc.toml`` on that split, stopped by SIGTERM after
   ``--budget-minutes`` of wall clock (segkit keeps the best whole epoch), softmax of the best model
   on the test images (tiles + flip TTA, as ``segkit eval`` predicts), then the ``watershed``
   instancer (``[instances] name = "watershed"``, ``min_distance`` 7 and ``min_area`` 30 as the
   classical watershed below: the outlined nuclei have a median radius of ~9 px);
3. **StarDist** (``stardist.models.StarDist2D``, a config from scratch: 32 rays, grid (2, 2), its
   default U-Net, 128-px patches) trained for the same wall clock on the same training images:
   each cut to the box around its annotated region, with the pixels outside that region labelled
   -1, StarDist's own "no loss here" label (since stardist 0.9), so its loss sees exactly the
   pixels segkit's does; flips and 90-degree turns as segkit's augmentation; best weights by its
   validation loss on the validation core; NMS threshold 0.4 (its default);
4. **classical**: Otsu's threshold on haematoxylin (``rgb2hed``) over the whole image, holes
   filled, objects under ``--min-area`` 30 px removed, split by a watershed of the distance
   transform from its local maxima (``--min-distance`` 7 px apart at least), all scikit-image;
5. **tuned once**: each learned method's foreground threshold (segkit's ``watershed`` ``threshold``,
   StarDist's ``prob_thresh``; both 0.5 by default) chosen from 0.3, 0.4, 0.5, 0.6 by object F1 on
   the validation core; the ``tuned`` rows use it, the others the defaults;
6. scored on the test cores with ``segkit.objects.scoring`` (one code for every method): truth =
   the 4-connected components of the experts' outlined nuclei; a predicted object counts only when
   it shares at least one pixel with an outlined nucleus (one that touches none is most often a
   nucleus nobody outlined, and is dropped before scoring: it counts neither as true nor false);
   object F1 at IoU 0.5, PQ, AJI over the split and per image; then where each method loses
   (``objects_common.losses``) and the Boundary IoU of its matched nuclei.

``--score-only`` scores the ``--work`` folder of an earlier run again.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
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
from bench_ucsb import dataset_overrides  # noqa: E402  (the same prepared split, the same keys)
from benchkit.tables import machine, table  # noqa: E402
from objects_common import boundary_iou, build_instancer, losses  # noqa: E402

IGNORE = (255, 255, 255)
PROJECT = ROOT / "projects" / "ucsb-bcc.toml"
METHODS = ("segkit", "segkit tuned", "classical", "stardist", "stardist tuned")
#: foreground thresholds tried on the validation core: segkit's ``watershed`` ``threshold`` and StarDist's ``prob_thresh``
THRESHOLDS = (0.3, 0.4, 0.5, 0.6)


def segkit_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from segkit.cli.main import main; main()", *args]


def read_pair(prepared: Path, split: str, stem: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(image RGB uint8, outlined nuclei bool, annotated region bool)`` of one prepared pair."""
    image = np.asarray(Image.open(prepared / split / "images" / f"{stem}.png").convert("RGB"))
    mask = np.asarray(Image.open(prepared / split / "masks" / f"{stem}.png").convert("RGB"))
    region = ~np.all(mask == IGNORE, axis=2)
    return image, np.any(mask != 0, axis=2) & region, region


def stems(prepared: Path, split: str) -> list[str]:
    return sorted(path.stem for path in (prepared / split / "images").glob("*.png"))


def truth_labels(nuclei: np.ndarray) -> np.ndarray:
    """The outlined nuclei as objects: 4-connected components, as segkit takes a class mask's objects."""
    from skimage.measure import label

    return label(nuclei, connectivity=1).astype(np.int32)


# ---------------------------------------------------------------- training, each in its own process

def train_segkit(prepared: Path, work: Path, budget_s: float) -> dict[str, float]:
    """``segkit train`` stopped by SIGTERM at the budget (it finishes the step and keeps the best
    whole epoch); returns its wall and CPU seconds."""
    overrides = dataset_overrides(prepared, work / "segkit-run")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(segkit_command("train", str(PROJECT), "--quiet", "--overwrite", *overrides))
    try:
        process.wait(timeout=budget_s)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        process.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"train_wall_s": time.perf_counter() - started,
            "train_cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
            "exit_code": process.returncode}


def ucsb_project(work: Path) -> tuple[Any, Any]:
    """``(Project, Registry)`` of ``projects/ucsb-bcc.toml`` on ``work``'s prepared split and run folder."""
    from segkit.plugins import get_registry
    from segkit.project import load_project

    registry = get_registry()
    return load_project(PROJECT, dataset_overrides(work / "prepared", work / "segkit-run")[1::2], registry), registry


def predict_segkit(prepared: Path, work: Path) -> None:
    """Worker: the best model's softmax on every test and validation image (``segkit/<stem>.npy``,
    ``segkit-valid/<stem>.npy``)."""
    from segkit.engine import components
    from segkit.engine.best_model import load_best_model
    from segkit.engine.predict import probabilities
    from segkit.engine.runtime import import_tensorflow

    project, registry = ucsb_project(work)
    import_tensorflow()
    model = load_best_model(project, registry)
    how = components.prediction_for(project)
    for split, folder in (("test", work / "segkit"), ("valid", work / "segkit-valid")):
        folder.mkdir(exist_ok=True)
        for stem in stems(prepared, split):
            image = read_pair(prepared, split, stem)[0]
            np.save(folder / f"{stem}.npy", probabilities(model, [image], how)[0].astype(np.float32))


def stardist_crops(prepared: Path, split: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each image (normalised as StarDist expects: percentiles 1-99.8 per channel) cut to the box
    around its annotated region (at least 128 px a side), labels -1 outside the region."""
    from csbdeep.utils import normalize

    images, labels = [], []
    for stem in stems(prepared, split):
        image, nuclei, region = read_pair(prepared, split, stem)
        label = np.where(region, truth_labels(nuclei), -1).astype(np.int32)
        rows, cols = np.nonzero(region)
        box = tuple(_span(found, size) for found, size in ((rows, image.shape[0]), (cols, image.shape[1])))
        images.append(normalize(image, 1, 99.8, axis=(0, 1)).astype(np.float32)[box])
        labels.append(label[box])
    return images, labels


def _span(found: np.ndarray, size: int, least: int = 128) -> slice:
    low, high = int(found.min()), int(found.max()) + 1
    grow = max(0, least - (high - low))
    low = max(0, min(low - grow // 2, size - max(least, high - low)))
    return slice(low, max(high, low + least))


def flip_turn(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The augmentation segkit's project uses too: random flips and 90-degree turns."""
    turns, flip = np.random.randint(4), np.random.rand() < 0.5
    x, y = np.rot90(x, turns, axes=(0, 1)), np.rot90(y, turns, axes=(0, 1))
    if flip:
        x, y = x[:, ::-1], y[:, ::-1]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def train_stardist(prepared: Path, work: Path, budget_s: float) -> None:
    """Worker: StarDist from scratch until ``budget_s`` of wall clock, then its test labels."""
    import keras
    from stardist.models import Config2D, StarDist2D

    started = time.perf_counter()
    cpu_started = time.process_time()
    train_x, train_y = stardist_crops(prepared, "train")
    valid_x, valid_y = stardist_crops(prepared, "valid")
    config = Config2D(n_rays=32, grid=(2, 2), n_channel_in=3, train_patch_size=(128, 128), train_batch_size=8,
                      train_epochs=1000, train_steps_per_epoch=18)
    model = StarDist2D(config, name="stardist", basedir=str(work / "stardist-run"))
    model.prepare_for_training()

    class Deadline(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if time.perf_counter() - started > budget_s:
                self.model.stop_training = True

    model.callbacks.append(Deadline())
    history = model.train(train_x, train_y, validation_data=(valid_x, valid_y), augmenter=flip_turn, seed=0)
    timing = {"train_wall_s": time.perf_counter() - started, "train_cpu_s": time.process_time() - cpu_started,
              "epochs": len(history.history["loss"])}
    (work / "stardist").mkdir(exist_ok=True)
    (work / "stardist" / "timing.json").write_text(json.dumps(timing))
    predict_stardist(prepared, work)


def predict_stardist(prepared: Path, work: Path) -> None:
    """The trained StarDist (its best weights, from ``stardist-run``) on every test image, with its
    default ``prob_thresh`` (``stardist/``) and with the one of :data:`THRESHOLDS` that scores the
    best object F1 on the validation core (``stardist-tuned/``, the choice in ``threshold.json``)."""
    from csbdeep.utils import normalize
    from stardist.models import StarDist2D

    model = StarDist2D(None, name="stardist", basedir=str(work / "stardist-run"))

    def labels(split: str, stem: str, threshold: float | None) -> np.ndarray:
        image = normalize(read_pair(prepared, split, stem)[0], 1, 99.8, axis=(0, 1))
        found, _ = model.predict_instances(image, n_tiles=(2, 2, 1), prob_thresh=threshold, show_tile_progress=False)
        return np.asarray(found, np.int32)

    valid = stems(prepared, "valid")
    nuclei = [read_pair(prepared, "valid", stem)[1] for stem in valid]
    best = max(THRESHOLDS, key=lambda threshold: outlined_f1(nuclei, [labels("valid", stem, threshold) for stem in valid]))
    (work / "stardist-tuned").mkdir(exist_ok=True)
    (work / "stardist-tuned" / "threshold.json").write_text(json.dumps({"prob_thresh": best}))
    for stem in stems(prepared, "test"):
        np.save(work / "stardist" / f"{stem}.npy", labels("test", stem, None))
        np.save(work / "stardist-tuned" / f"{stem}.npy", labels("test", stem, best))


def scored(nuclei: np.ndarray, predicted: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
    """``(ImageScores, truth labels, kept predicted labels)`` of one image under the ignore rule."""
    from segkit.objects.scoring import score_image

    truth, kept = truth_labels(nuclei), outlined_only(predicted, nuclei)
    ones = np.ones(max(int(truth.max()), int(kept.max())), np.int64)
    return score_image(truth, ones[: truth.max()], kept, ones[: kept.max()], None, [1]), truth, kept


def outlined_f1(nuclei: list[np.ndarray], predicted: list[np.ndarray]) -> float:
    """Object F1 over a split's images, counts summed, under the ignore rule."""
    from segkit.objects.scoring import object_figures

    return object_figures([scored(*pair)[0] for pair in zip(nuclei, predicted)], {1: "nucleus"})["object_f1"]


def segkit_instancers(args: argparse.Namespace, prepared: Path) -> tuple[Any, Any, float]:
    """segkit's ``watershed`` at its default threshold and at the one of :data:`THRESHOLDS` that
    scores the best object F1 on the validation core (and that threshold)."""
    classes = ucsb_project(args.work)[0].classes

    def instancer(threshold: float) -> Any:
        return build_instancer("watershed", classes, min_distance=args.min_distance, min_area=args.min_area,
                               threshold=threshold)

    valid = [(read_pair(prepared, "valid", stem), np.load(args.work / "segkit-valid" / f"{stem}.npy"))
             for stem in stems(prepared, "valid")]

    def valid_f1(threshold: float) -> float:
        built = instancer(threshold)
        return outlined_f1([pair[1] for pair, _ in valid], [built(softmax, pair[0]).labels for pair, softmax in valid])

    best = max(THRESHOLDS, key=valid_f1)
    return instancer(0.5), instancer(best), best


def run_worker(step: str, args: argparse.Namespace) -> None:
    subprocess.run([sys.executable, __file__, "--worker", step, "--work", str(args.work),
                    "--budget-minutes", str(args.budget_minutes)], check=True,
                   env={**os.environ, "PYTHONHASHSEED": "0"})


# ---------------------------------------------------------------- the three methods' objects

def classical_labels(image: np.ndarray, min_distance: int, min_area: int) -> np.ndarray:
    """Otsu on haematoxylin, holes filled, specks removed, split by a distance-transform watershed."""
    from scipy import ndimage
    from skimage.color import rgb2hed
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian, threshold_otsu
    from skimage.morphology import remove_small_objects
    from skimage.segmentation import watershed

    haematoxylin = rgb2hed(image)[:, :, 0]
    nuclei = ndimage.binary_fill_holes(haematoxylin > threshold_otsu(haematoxylin))
    nuclei = remove_small_objects(nuclei, max_size=min_area - 1)
    distance = gaussian(ndimage.distance_transform_edt(nuclei), sigma=1)
    peaks = peak_local_max(distance, min_distance=min_distance, labels=ndimage.label(nuclei)[0], exclude_border=False)
    markers = np.zeros(nuclei.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-distance, markers, mask=nuclei).astype(np.int32)


def outlined_only(predicted: np.ndarray, nuclei: np.ndarray) -> np.ndarray:
    """``predicted`` without the objects that share no pixel with an outlined nucleus."""
    kept = np.unique(predicted[nuclei])
    return np.where(np.isin(predicted, kept[kept > 0]), predicted, 0).astype(np.int32)


def method_labels(args: argparse.Namespace, prepared: Path, stem: str, segkit: tuple[Any, Any]
                  ) -> dict[str, np.ndarray]:
    image = read_pair(prepared, "test", stem)[0]
    softmax = np.load(args.work / "segkit" / f"{stem}.npy")
    return {"segkit": segkit[0](softmax, image).labels.astype(np.int32),
            "segkit tuned": segkit[1](softmax, image).labels.astype(np.int32),
            "classical": classical_labels(image, args.min_distance, args.min_area),
            "stardist": np.load(args.work / "stardist" / f"{stem}.npy"),
            "stardist tuned": np.load(args.work / "stardist-tuned" / f"{stem}.npy")}


# ---------------------------------------------------------------- scoring and the report

def score(args: argparse.Namespace, prepared: Path) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Per method: the split's object figures (``segkit.objects.scoring``) and where it loses."""
    from segkit.objects.scoring import object_figures

    default, tuned, threshold = segkit_instancers(args, prepared)
    chosen = json.loads((args.work / "stardist-tuned" / "threshold.json").read_text())["prob_thresh"]
    print(f"tuned on the validation core (best object F1 of {THRESHOLDS}): segkit watershed threshold {threshold}, "
          f"StarDist prob_thresh {chosen}; untuned: 0.5 both")
    scores: dict[str, list[Any]] = {method: [] for method in METHODS}
    errors: dict[str, list[dict[str, float]]] = {method: [] for method in METHODS}
    for stem in stems(prepared, "test"):
        _, nuclei, _ = read_pair(prepared, "test", stem)
        for method, predicted in method_labels(args, prepared, stem, (default, tuned)).items():
            image_scores, truth, kept = scored(nuclei, predicted)
            scores[method].append(image_scores)
            errors[method].append(losses(truth, kept) | {"boundary_iou": boundary_iou(truth, kept)})
    figures = {method: object_figures(scores[method], {1: "nucleus"}) for method in METHODS}
    return figures, {method: _summed(rows) for method, rows in errors.items()}


def _summed(rows: list[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {key: sum(row[key] for row in rows) for key in rows[0] if key != "boundary_iou"}
    matched = [row for row in rows if row["matched"]]  # an image without a match has no Boundary IoU (NaN)
    total["boundary_iou"] = float(np.average([row["boundary_iou"] for row in matched],
                                             weights=[row["matched"] for row in matched])) if matched else float("nan")
    return total


def report(args: argparse.Namespace, prepared: Path) -> None:
    split = json.loads((prepared / "split.json").read_text(encoding="utf-8"))
    tested = ", ".join(group for group, name in sorted(split["groups"].items()) if name == "test")
    timing = json.loads((args.work / "timing.json").read_text(encoding="utf-8"))
    print(f"\nmachine: {machine()}; load average now {load_average()}")
    print(f"test cores (split seed {split['seed']}): {tested}; {len(stems(prepared, 'test'))} images")
    for method in ("segkit", "stardist"):
        done = timing[method]
        print(f"{method} training: {done['train_wall_s'] / 60:.1f} min wall, {done['train_cpu_s'] / 60:.1f} min CPU"
              f"{', ' + str(done['epochs']) + ' epochs' if 'epochs' in done else ''}; load average after: "
              f"{done.get('load', '?')}")
    figures, errors = score(args, prepared)
    names = ("object_precision", "object_recall", "object_f1", "dq", "sq", "pq", "aji")
    rows = [[method, *(figures[method][name] for name in names),
             *(figures[method][f"{name}_image_mean"] for name in ("object_f1", "pq", "aji"))] for method in METHODS]
    print("\nover the test split (counts summed over its images), then per-image means:")
    print(table(rows, ["method", "precision", "recall", "F1@0.5", "DQ", "SQ", "PQ", "AJI",
                       "F1 img mean", "PQ img mean", "AJI img mean"]))
    kinds = ("truth", "matched", "merged", "split", "missed", "poorly_outlined", "kept_predicted",
             "false_detections", "boundary_iou")
    print("\nwhere they lose (outlined nuclei of the test split; see objects_common.py):")
    print(table([[method, *(errors[method][kind] for kind in kinds)] for method in METHODS], ["method", *kinds]))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ucsb-bcc-sample")
    parser.add_argument("--work", type=Path, default=Path("/tmp/segkit-objects-ucsb"))
    parser.add_argument("--budget-minutes", type=float, default=10.0,
                        help="wall clock of each training, segkit's and StarDist's")
    parser.add_argument("--split-seed", type=int, default=0, help="another seed puts other cores in the test split")
    parser.add_argument("--score-only", action="store_true", help="score the --work folder of an earlier run")
    parser.add_argument("--min-distance", type=int, default=7,
                        help="least px between two watershed markers, segkit's and the classical one's")
    parser.add_argument("--min-area", type=int, default=30, help="smaller objects are dropped, by both watersheds")
    parser.add_argument("--worker", choices=("segkit-predict", "stardist", "stardist-predict"), help=argparse.SUPPRESS)
    return parser.parse_args()


def prepare_and_train(args: argparse.Namespace, prepared: Path) -> None:
    subprocess.run(segkit_command("prepare", "ucsb-bcc", str(args.data), "--out", str(prepared),
                                  "--option", "ignore_margin=16", "--option", "ignore_region=nuclei",
                                  "--option", "test_ratio=0.43", "--option", f"seed={args.split_seed}",
                                  "--option", "overwrite=true"), check=True)
    budget_s = args.budget_minutes * 60
    timing = {"segkit": train_segkit(prepared, args.work, budget_s) | {"load": load_average()}}
    run_worker("segkit-predict", args)
    run_worker("stardist", args)
    timing["stardist"] = json.loads((args.work / "stardist" / "timing.json").read_text()) | {"load": load_average()}
    (args.work / "timing.json").write_text(json.dumps(timing))


def main() -> None:
    args = parse_args()
    prepared = args.work / "prepared"
    if args.worker == "segkit-predict":
        predict_segkit(prepared, args.work)
    elif args.worker == "stardist":
        train_stardist(prepared, args.work, args.budget_minutes * 60)
    elif args.worker == "stardist-predict":  # predictions again from the saved weights, no training
        predict_stardist(prepared, args.work)
    elif args.score_only and not (args.work / "timing.json").is_file():
        print(f"--score-only: {args.work / 'timing.json'} is missing: run without --score-only first", file=sys.stderr)
        sys.exit(2)
    else:
        if not args.score_only:
            prepare_and_train(args, prepared)
        report(args, prepared)


if __name__ == "__main__":
    main()
