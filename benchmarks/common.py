"""Shared pieces of the side-by-side benchmarks: data, the project, the reference approach, workers.

Every benchmark compares segkit with the *reference approach* on the same model, the same data
and the same seed, in one run, alternating A B A B. Each measured run is a fresh Python process
(``worker(...)``) that prints one JSON line, so peak RSS (``VmHWM``), TensorFlow's thread pools
and compiled functions never leak from one run into the next.

* Data: N synthetic H&E 512x512 PNG pairs (``segkit_synthetic.he_tiles``), generated once into a
  folder that is re-used (``--data``, default ``$TMPDIR/segkit-bench-512``); a larger folder
  serves smaller runs (the first N pairs by name).
* The model: FlexUNet 256x256, ``num_layers`` 6, ``base_filters`` 16 (other keys at their
  defaults: 7x7 first kernels, dropout 0.04), 3 classes.
* segkit: a real project file loaded by ``load_project`` and the real engine pieces:
  ``components.build_model`` / ``compile_model``, ``engine.train.pipeline_settings`` and
  ``make_training_dataset``.
* The reference approach (TensorFlowFlexUNet's ``ImageCategorizedMaskDataset.create``): every
  image decoded and resized to the model size into one uint8 array ``X``, every mask into one
  int8 one-hot array ``Y``, before ``model.fit(X, Y)``. Decoding uses segkit's own readers, so
  both sides pay the same per-file cost; only *when* and *how much is held* differ. The model
  takes ``[0, 1]`` floats, so the reference model is ``Rescaling(1/255)`` in front of the same
  FlexUNet (one multiply per input value, the reference's own model divides by 255 inside too).
  ``--reference-images float32`` stores ``X`` as float32 in ``[0, 1]`` instead (4x the bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
SIDE = 512  # the PNGs on disk
MODEL_SIDE = 256  # the model input
NUM_LAYERS = 6
BASE_FILTERS = 16
NUM_CLASSES = 3
SEED = 1
DEFAULT_DATA = Path(tempfile.gettempdir()) / "segkit-bench-512"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PROJECT = """
[project]
name = "bench"
output_dir = "{output}"
seed = {seed}

[model]
name = "flexunet"
image_width = {side}
image_height = {side}
image_channels = 3
base_filters = {base_filters}
num_layers = {num_layers}

[[classes]]
name = "background"
color = [0, 0, 0]

[[classes]]
name = "benign"
color = [0, 255, 0]

[[classes]]
name = "malignant"
color = [255, 0, 0]

[optimizer]
name = "adam"
learning_rate = 1e-4

[loss]
name = "categorical_crossentropy"

[metrics]
names = ["dice_coef_multiclass"]

[dataset]
name = "categorized-masks"
train = {{ images = "{data}/train/images", masks = "{data}/train/masks" }}
valid = {{ images = "{data}/train/images", masks = "{data}/train/masks" }}

[train]
epochs = {epochs}
batch_size = {batch_size}
patience = 0
cache = "{cache}"
jit_compile = "{jit}"
precision = "{precision}"
reducer = {{ factor = 0.5, patience = 0 }}

[infer]
images = "{infer}"
"""


# --------------------------------------------------------------------------------------------
# Data


def ensure_pairs(root: Path, count: int, side: int = SIDE) -> Path:
    """``root/train/{images,masks}`` with at least ``count`` synthetic ``side``x``side`` pairs; returns ``root``.

    The folder is re-used while its marker says it holds enough pairs of that size.
    """
    from segkit_synthetic.he_tiles import TileSettings
    from segkit_synthetic.tile_folders import write_split

    root = Path(root)
    marker = root / "pairs.json"
    try:
        held = json.loads(marker.read_text())
        if held["side"] == side and held["count"] >= count:
            return root
    except (OSError, ValueError, KeyError):
        pass
    started = time.perf_counter()
    print(f"generating {count} synthetic {side}x{side} pairs into {root} ...", file=sys.stderr, flush=True)
    marker.unlink(missing_ok=True)
    write_split(root / "train", count=count, first_seed=0, settings=TileSettings(size=side))
    marker.write_text(json.dumps({"side": side, "count": count}))
    print(f"  done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return root


def linked_pairs(root: Path, count: int) -> Path:
    """``<root>-x<count>/train``: ``root``'s generated pairs repeated to ``count`` by hard links, for
    figures that depend on how many pairs a process decodes and holds, not on their pixels (peak
    memory). Returns the new root; re-used when it already holds ``count`` pairs."""
    source = Path(root) / "train"
    originals = sorted((source / "images").glob("*.png"))
    linked = Path(f"{root}-x{count}")
    for part in ("images", "masks"):
        (linked / "train" / part).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            target = linked / "train" / part / f"tile_{index:05d}.png"
            if not target.exists():
                os.link(source / part / originals[index % len(originals)].name, target)
    return linked


def write_project(folder: Path, data: Path, *, batch_size: int = 4, cache: str = "none", jit: str = "auto",
                  precision: str = "float32", epochs: int = 1, side: int = MODEL_SIDE,
                  infer: Path | None = None) -> Path:
    """A segkit project file training the benchmark FlexUNet on ``data/train``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench.toml"
    path.write_text(PROJECT.format(
        output=folder / "run", seed=SEED, side=side, base_filters=BASE_FILTERS, num_layers=NUM_LAYERS,
        data=data, epochs=epochs, batch_size=batch_size, cache=cache, jit=jit, precision=precision,
        infer=infer or data / "train" / "images"), encoding="utf-8")
    return path


def load(path: Path, overrides: Sequence[str] = ()) -> tuple[Any, Any]:
    """``(Project, Registry)`` exactly as the CLI gets them."""
    from segkit.plugins import get_registry
    from segkit.project import load_project

    registry = get_registry()
    return load_project(path, list(overrides), registry), registry


PALETTE = np.array([(0, 0, 0), (0, 255, 0), (255, 0, 0)], dtype=np.int64)


def reference_decode(pair: Any, side: int) -> tuple[np.ndarray, np.ndarray]:
    """One pair decoded the way the reference's ``ImageCategorizedMaskDataset`` does it: the image
    read and resized (bilinear), the RGB mask turned into indices by ``argmin`` over the squared
    distance to every palette colour (an int64 ``(K, H, W, 3)`` temporary), then resized (nearest)."""
    from PIL import Image

    with Image.open(pair.image) as file:
        image = np.asarray(file.convert("RGB").resize((side, side), Image.Resampling.BILINEAR))
    with Image.open(pair.mask) as file:
        rgb = np.array(file.convert("RGB"))
    index = np.argmin(np.sum((rgb - PALETTE.reshape(-1, 1, 1, 3)) ** 2, axis=-1), axis=0).astype(np.uint8)
    return image, np.asarray(Image.fromarray(index).resize((side, side), Image.Resampling.NEAREST))


def reference_arrays(source: Any, pairs: Sequence[Any], side: int, num_classes: int,
                     image_dtype: str = "uint8", decode: str = "segkit") -> tuple[np.ndarray, np.ndarray]:
    """The reference approach: all images (model size) in one array, all masks as int8 one-hot.

    ``decode="segkit"`` decodes with segkit's own readers (both sides pay the same per file: the
    conservative comparison); ``"reference"`` with the reference's own per-pixel argmin."""
    from segkit.data.pipeline import load_resized

    images = np.zeros((len(pairs), side, side, 3), dtype=np.float32 if image_dtype == "float32" else np.uint8)
    masks = np.zeros((len(pairs), side, side, num_classes), dtype=np.int8)
    eye = np.eye(num_classes, dtype=np.int8)
    for n, pair in enumerate(pairs):
        if decode == "reference":
            image, mask = reference_decode(pair, side)
        else:
            image, mask = load_resized(source, pair, side, side)
        images[n] = image / np.float32(255) if image_dtype == "float32" else image
        masks[n] = eye[mask]
    return images, masks


def reference_model(model: Any, image_dtype: str) -> Any:
    """The same FlexUNet behind a ``Rescaling(1/255)`` when ``X`` is stored as uint8."""
    import keras

    if image_dtype == "float32":
        return model
    inputs = keras.Input(model.input_shape[1:], dtype="float32", name="image")
    return keras.Model(inputs, model(keras.layers.Rescaling(1 / 255)(inputs)), name="reference")


# --------------------------------------------------------------------------------------------
# Timing inside a worker


class StepClock:
    """A Keras callback noting when each train batch finishes: wall (``perf_counter``) and this
    process's CPU time (``process_time``, all threads), so a busy machine can be told apart.
    Past ``deadline`` (a ``perf_counter`` value) it stops training, having seen 3 steps at least."""

    def __new__(cls, deadline: float | None = None) -> Any:
        import keras

        class _Clock(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.ends: list[float] = []
                self.cpu: list[float] = []
                self.stopped = False

            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                self.ends.append(time.perf_counter())
                self.cpu.append(time.process_time())
                if deadline is not None and self.ends[-1] > deadline and len(self.ends) >= 3:
                    self.stopped = True  # a configuration too slow for the time budget
                    self.model.stop_training = True

        return _Clock()


def steady_rate(ends: Sequence[float], warmup: int, batch_size: int) -> float:
    """Images/s over the steps after ``warmup`` finished steps."""
    if len(ends) <= warmup + 1:
        return float("nan")
    return (len(ends) - 1 - warmup) * batch_size / (ends[-1] - ends[warmup])


def cpu_rate(ends: Sequence[float], cpu: Sequence[float], warmup: int, batch_size: int) -> float:
    """Images per CPU-second (all threads of this process) over the steps after ``warmup``; with
    other processes on the machine this moves less than the wall-clock rate."""
    if len(ends) <= warmup + 1:
        return float("nan")
    return (len(ends) - 1 - warmup) * batch_size / (cpu[-1] - cpu[warmup])


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def peak_rss_mb() -> float:
    """This process's peak resident set size (``VmHWM``) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's resident set size now (``VmRSS``) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def add_onednn_option(parser: Any) -> None:
    parser.add_argument("--onednn", default="default", choices=("default", "on", "off"),
                        help="TF_ENABLE_ONEDNN_OPTS for both sides ('default': TensorFlow's own, on for x86)")


def apply_onednn(choice: str) -> None:
    """Set ``TF_ENABLE_ONEDNN_OPTS`` for the workers started after this (they inherit it)."""
    if choice != "default":
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if choice == "on" else "0"


def add_worker_options(parser: Any) -> None:
    """The hidden options by which a benchmark runs one measured side in a fresh process."""
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", default="segkit", help=argparse.SUPPRESS)


def ran_as_worker(args: Any, run_worker: Any) -> bool:
    """Run ``run_worker(args)`` (segkit's side under ``$SEGKIT_BENCH_PATCH``) when started as a worker."""
    if not args.worker:
        return False
    if args.side == "segkit":
        apply_patch()
    run_worker(args)
    return True


def apply_patch() -> str:
    """Import ``$SEGKIT_BENCH_PATCH`` (a .py file) and call its ``patch()``: how a proposed change
    to segkit's core is A/B-measured before it is made. Returns the path, or "" when unset."""
    path = os.environ.get("SEGKIT_BENCH_PATCH", "")
    if path:
        import importlib.util

        spec = importlib.util.spec_from_file_location("segkit_bench_patch", path)
        assert spec is not None and spec.loader is not None, path
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.patch()
    return path


def emit(result: dict[str, Any]) -> None:
    """The worker's answer: one JSON line on stdout, with its peak RSS."""
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    if os.environ.get("SEGKIT_BENCH_PATCH"):
        result["patch"] = os.environ["SEGKIT_BENCH_PATCH"]
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------------------------
# Running workers


def worker(script: Path, args: Sequence[str], timeout: float = 900) -> dict[str, Any]:
    """Run ``script --worker ARGS`` in a fresh interpreter and return its RESULT (plus wall time)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(script), "--worker", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "0"})
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"worker {script.name} {' '.join(args)} failed (exit {done.returncode})")
    result = json.loads(lines[-1][len("RESULT "):])
    result["process_wall_s"] = round(wall, 2)
    return result


def median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64)))


def machine() -> str:
    """One line: CPU model, cores, memory, Python, TensorFlow and Keras versions (no TF import)."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024**2:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    from importlib import metadata

    versions = ", ".join(f"{name} {metadata.version(name)}" for name in ("tensorflow", "keras"))
    return f"{model}, {os.cpu_count()} logical CPUs{memory}; Python {platform.python_version()}, {versions}"


def _cell(value: Any) -> str:
    if not isinstance(value, float):
        return str(value)
    if value != value:
        return "nan"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain aligned text table (what the README copies)."""
    cells = [[str(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
