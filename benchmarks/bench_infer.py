"""Inference throughput: ``segkit infer`` (batched) vs a per-image ``model.predict`` loop, same 64 images.

    .venv/bin/python benchmarks/bench_infer.py [--images 64] [--rounds 2]

The same saved FlexUNet (256x256, num_layers 6, base_filters 16; untrained, seeded: speed does not
depend on the weights) segments the same 512x512 images, A B A B, each run a fresh process:

* end to end: the real ``segkit.engine.infer.infer(project)`` (reads the files, segments in
  batches of ``[infer] batch_size``, writes each mask and overlay) vs the reference's way: per
  file read, resize, ``model.predict(x[None])``, probabilities back to the image size, argmax,
  the same colourised mask and overlay written (its resizing is its own, Pillow's, so the
  baseline does not move when segkit's changes). Each side runs once on 8 other images first
  (warm-up: kernels, file cache), then the timed call on ``--images`` images.
* model only: ``segkit.engine.predict.segment(model, images, how)`` vs the loop of
  ``model.predict(x[None])`` + the same post-processing, on images already in memory (second pass
  timed).

Goal: segkit >= 2x the images/s of the loop.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from PIL import Image

from benchkit.clock import load_average
from benchkit.project import DEFAULT_DATA, MODEL_SIDE, SEED, SIDE, ensure_pairs, load, write_project
from benchkit.tables import machine, median, table
from benchkit.workers import add_onednn_option, add_worker_options, apply_onednn, emit, ran_as_worker, worker

SCRIPT = Path(__file__).resolve()
WARMUP_IMAGES = 8


def image_folders(data: Path, count: int, root: Path) -> tuple[Path, Path]:
    """``root/timed`` (``count`` images) and ``root/warmup`` (8 others), as symlinks to the PNGs."""
    files = sorted((data / "train" / "images").glob("*.png"))
    assert len(files) >= count + WARMUP_IMAGES, f"{data} holds {len(files)} images"
    timed, warmup = root / "timed", root / "warmup"
    for folder, chosen in ((timed, files[:count]), (warmup, files[count : count + WARMUP_IMAGES])):
        folder.mkdir(parents=True, exist_ok=True)
        for path in chosen:
            (folder / path.name).symlink_to(path)
    return timed, warmup


def to_input(image: np.ndarray, side: int) -> np.ndarray:
    """The reference's input: the image resized (Pillow bilinear) and scaled to [0, 1]."""
    return np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BILINEAR), np.float32) / 255


def resize_probabilities(probabilities: np.ndarray, height: int, width: int) -> np.ndarray:
    """Softmax back to the image size, bilinear per class (Pillow), as segkit did when this was written.

    The reference side has its own pre/post-processing so that its figure does not move when
    segkit's changes; both cost about the same per image."""
    return np.stack([np.asarray(Image.fromarray(probabilities[:, :, k].astype(np.float32), mode="F").resize(
        (width, height), Image.Resampling.BILINEAR)) for k in range(probabilities.shape[2])], axis=2)


def reference_infer(model: object, files: list[Path], output: Path, project: object) -> None:
    """The reference's inferencer: one file at a time, one ``model.predict`` per image."""
    from segkit.data.images import read_image, write_png
    from segkit.data.resize import blend

    side = project.model.image_height  # type: ignore[attr-defined]
    for path in files:
        image = read_image(path, 3)
        probabilities = model.predict(to_input(image, side)[None], verbose=0)[0]  # type: ignore[attr-defined]
        mask = resize_probabilities(probabilities, *image.shape[:2]).argmax(axis=2).astype("uint8")
        colours = project.classes.colorize(mask)  # type: ignore[attr-defined]
        write_png(output / f"{path.stem}.png", colours)
        write_png(output.with_name(output.name + "_overlay") / f"{path.stem}.png", blend(image, colours, mask > 0))


def run_worker(args: argparse.Namespace) -> None:
    from segkit.engine.runtime import import_tensorflow

    folder = Path(args.folder)
    project_file = folder / "bench.toml"
    if args.side == "save":
        project, registry = load(project_file)
        import keras

        from segkit.engine import components
        from segkit.run_folder import BEST_MODEL

        import_tensorflow()
        keras.utils.set_random_seed(SEED)
        model = components.build_model(project, registry)
        (project.output_dir / BEST_MODEL).parent.mkdir(parents=True, exist_ok=True)
        model.save(project.output_dir / BEST_MODEL)
        emit({"side": "save"})
        return

    from segkit.data.images import read_image
    from segkit.data.pairing import list_images

    timed, warmup = folder / "images" / "timed", folder / "images" / "warmup"
    out = Path(tempfile.mkdtemp(prefix="segkit-bench-infer-out-"))
    result: dict[str, object] = {"side": args.side}
    if args.side == "segkit":
        from segkit.engine.best_model import load_best_model
        from segkit.engine.components import prediction_for
        from segkit.engine.infer import infer
        from segkit.engine.predict import segment

        warm, _ = load(project_file, [f"infer.images={warmup}", f"infer.output={out / 'warm'}"])
        project, _ = load(project_file, [f"infer.images={timed}", f"infer.output={out / 'timed'}"])
        infer(warm)
        started = time.perf_counter()
        count = infer(project).count
        result["end_to_end_s"] = time.perf_counter() - started
        import_tensorflow()
        model = load_best_model(project)
        images = [read_image(path, 3) for path in list_images(timed)]
        how = prediction_for(project)
        segment(model, images, how)
        started = time.perf_counter()
        segment(model, images, how)
        result["model_only_s"] = time.perf_counter() - started
        result["batch_size"] = how.batch_size
    else:
        import keras

        import tensorflow  # noqa: F401  (a plain TensorFlow program)

        project, _ = load(project_file)
        from segkit.run_folder import BEST_MODEL

        model = keras.saving.load_model(project.output_dir / BEST_MODEL, compile=False)
        reference_infer(model, list_images(warmup), out / "warm", project)
        started = time.perf_counter()
        files = list_images(timed)
        reference_infer(keras.saving.load_model(project.output_dir / BEST_MODEL, compile=False), files,
                        out / "timed", project)
        result["end_to_end_s"] = time.perf_counter() - started
        count = len(files)
        images = [read_image(path, 3) for path in files]
        side = project.model.image_height

        def loop() -> None:
            for image in images:
                p = model.predict(to_input(image, side)[None], verbose=0)[0]
                resize_probabilities(p, *image.shape[:2]).argmax(axis=2)

        loop()
        started = time.perf_counter()
        loop()
        result["model_only_s"] = time.perf_counter() - started
    assert len(list((out / "timed").glob("*.png"))) == count
    shutil.rmtree(out, ignore_errors=True)
    result["images"] = count
    result["load"] = load_average()
    emit(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    add_onednn_option(parser)
    add_worker_options(parser)
    parser.add_argument("--folder", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if ran_as_worker(args, run_worker):
        return
    apply_onednn(args.onednn)
    ensure_pairs(args.data, args.images + WARMUP_IMAGES)
    print(machine())
    folder = Path(tempfile.mkdtemp(prefix="segkit-bench-infer-"))
    try:
        timed, _ = image_folders(args.data, args.images, folder / "images")
        write_project(folder, args.data, infer=timed)
        worker(SCRIPT, ["--side", "save", "--folder", str(folder)])
        print(f"{args.images} images of {SIDE}x{SIDE}, model {MODEL_SIDE}x{MODEL_SIDE}\n")
        results: dict[str, list[dict]] = {"reference": [], "segkit": []}
        for round_ in range(args.rounds):
            for side in ("reference", "segkit"):
                result = worker(SCRIPT, ["--side", side, "--folder", str(folder)])
                results[side].append(result)
                print(f"[round {round_ + 1}] {side:9s} end to end {result['images'] / result['end_to_end_s']:6.2f} img/s, "
                      f"model only {result['images'] / result['model_only_s']:6.2f} img/s (load {result['load']})",
                      flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows = []
    for key, name in (("end_to_end_s", "end to end (files in, masks + overlays out)"),
                      ("model_only_s", "model only (images in memory)")):
        ref = args.images / median([r[key] for r in results["reference"]])
        seg = args.images / median([r[key] for r in results["segkit"]])
        rows.append([name, ref, seg, seg / ref, ">= 2"])
    print("\nmedians over rounds (img/s)")
    print(table(rows, ["figure", "per-image predict", "segkit", "segkit/ref", "goal"]))


if __name__ == "__main__":
    main()
