"""Training throughput and time to the first step: segkit's tf.data pipeline vs the reference approach.

    .venv/bin/python benchmarks/bench_train.py [--pairs 512] [--epoch-pairs 64] [--batch-size 4] [--rounds 2]

Same FlexUNet (256x256, num_layers 6, base_filters 16), same 512x512 PNG pairs, same seed, one run,
A B A B (each measured run a fresh process, see ``benchkit``):

1. ``--pairs`` (512) pairs, ``--steps`` steps of epoch 1: the time from the start of data
   preparation to the first finished step (goal: segkit <= 0.25x the reference), and the rate of
   the steps after ``--warmup`` (segkit streams, the reference slices arrays).
2. ``--epoch-pairs`` (64) pairs, ``--epochs`` (3) whole epochs: images/s over every epoch after the
   first (the steady state: epoch boundaries and segkit's per-epoch decoding included), for the
   reference, segkit ``cache = "none"`` and segkit ``cache = "memory"`` (goal: >= 1.0x).

Rates are wall-clock images/s; "per CPU-s" is images per CPU-second of the whole process (decoding
threads included), which moves much less than wall time when other jobs share the machine.
``--reference-decode reference`` decodes the reference's arrays with its own per-pixel argmin
(what the reference pays) instead of segkit's readers (the default, the conservative choice).

segkit runs as ``segkit train`` does: ``import_tensorflow``, ``seed_everything``,
``configure_precision``, ``compile_model`` (its loss, ``dice_coef_multiclass`` and the always-on
per-class metrics). The reference is a plain TensorFlow program: ``keras.utils.set_random_seed``,
the same optimizer and loss, its one metric ``dice_coef_multiclass``, ``model.fit(X, Y)``.
``--onednn on|off`` sets ``TF_ENABLE_ONEDNN_OPTS`` for both sides (default: TensorFlow's own, on
for x86 CPUs).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit.clock import StepClock, cpu_rate, load_average, rss_mb, steady_rate  # noqa: E402
from benchkit.project import DEFAULT_DATA, MODEL_SIDE, NUM_CLASSES, ensure_pairs, load, write_project  # noqa: E402
from benchkit.reference import reference_arrays, reference_model  # noqa: E402
from benchkit.tables import machine, median, table  # noqa: E402
from benchkit.workers import add_onednn_option, add_worker_options, apply_onednn, emit, ran_as_worker, worker  # noqa: E402

SCRIPT = Path(__file__).resolve()


def run_worker(args: argparse.Namespace) -> None:
    """One measured training run in this process; prints RESULT {...}."""
    folder = Path(tempfile.mkdtemp(prefix="segkit-bench-train-"))
    project, registry = load(write_project(
        folder, args.data, batch_size=args.batch_size, cache=args.cache, epochs=args.epochs,
        jit=args.jit, precision=args.precision, side=args.model_side))
    from segkit.engine import components

    if args.side == "segkit":
        from segkit.engine.runtime import (
            configure_precision, deterministic_for, import_tensorflow, jit_setting, seed_everything,
        )

        import_tensorflow()
        # as segkit train does; --determinism off measures float32 without deterministic kernels too
        seed_everything(project.seed, deterministic_for(project.train.jit_compile) and args.determinism != "off")
        configure_precision(project.train.precision)
    else:
        import keras
        import tensorflow  # noqa: F401  (a plain TensorFlow program)

        keras.utils.set_random_seed(project.seed)
        keras.mixed_precision.set_global_policy(args.precision)
    import keras

    source = components.open_dataset(project, registry)
    pairs = source.pairs("train")[: args.pairs]
    assert len(pairs) == args.pairs, f"{args.data} holds {len(pairs)} pairs, {args.pairs} asked"
    model = components.build_model(project, registry)
    clock = StepClock(time.perf_counter() + args.max_seconds if args.max_seconds else None)
    steps = args.steps or -(-len(pairs) // args.batch_size)
    rss_before_data = rss_mb()
    data_start = time.perf_counter()
    if args.side == "segkit":
        from segkit.data.pipeline import make_training_dataset
        from segkit.engine.pipeline_settings import pipeline_settings

        data, _ = make_training_dataset(source, pairs, pipeline_settings(project, True), 0, args.epochs)
        data_ready = time.perf_counter()
        components.compile_model(model, project, registry, jit_compile=jit_setting(project.train.jit_compile))
        model.fit(data, epochs=args.epochs, steps_per_epoch=steps, verbose=0, callbacks=[clock])
    else:
        from segkit_training.dice_metrics import DiceCoefMulticlass

        images, masks = reference_arrays(source, pairs, args.model_side, NUM_CLASSES,
                                                args.reference_images, args.reference_decode)
        data_ready = time.perf_counter()
        model = reference_model(model, args.reference_images)
        model.compile(optimizer=components.build_optimizer(project),
                      loss=keras.losses.CategoricalCrossentropy(), metrics=[DiceCoefMulticlass()],
                      jit_compile={"on": True, "off": False}.get(args.jit, "auto"))
        model.fit(images, masks, batch_size=args.batch_size, epochs=args.epochs, steps_per_epoch=steps,
                  shuffle=True, verbose=0, callbacks=[clock])
    ends = clock.ends
    history = model.history.history if model.history is not None else {}
    warmup = steps if args.epochs > 1 else args.warmup  # whole epochs after the first, or steps after warm-up
    if len(ends) <= warmup + 1:  # stopped by --max-seconds before that: every step after the first
        warmup = 1
    emit({
        "side": args.side, "cache": args.cache, "pairs": len(pairs), "steps": len(ends),
        "data_ready_s": round(data_ready - data_start, 3),
        "first_step_s": round(ends[0] - data_start, 3),
        "first_step_from_start_s": round(ends[0] - STARTED, 3),
        "images_per_s": round(steady_rate(ends, warmup, args.batch_size), 4),
        "images_per_cpu_s": round(cpu_rate(ends, clock.cpu, warmup, args.batch_size), 4),
        "load": load_average(),
        "stopped_early": clock.stopped,
        "jit_effective": bool(getattr(model, "jit_compile", False)),
        "rss_before_data_mb": round(rss_before_data, 1),
        "last_loss": float(history["loss"][-1]) if history.get("loss") else float("nan"),
        "device": device_name(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
    })


def device_name() -> str:
    """The GPU's name when TensorFlow sees one, else "CPU"."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    return str(tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name))


def worker_args(args: argparse.Namespace, side: str, cache: str, pairs: int, epochs: int, steps: int) -> list[str]:
    return ["--side", side, "--cache", cache, "--pairs", str(pairs), "--epochs", str(epochs), "--steps", str(steps),
            "--batch-size", str(args.batch_size), "--warmup", str(args.warmup), "--data", str(args.data),
            "--jit", args.jit, "--precision", args.precision, "--reference-images", args.reference_images,
            "--reference-decode", args.reference_decode]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=512, help="pairs for the first-step part")
    parser.add_argument("--steps", type=int, default=12, help="steps run in the first-step part")
    parser.add_argument("--warmup", type=int, default=4, help="steps not counted in the first-step part's rate")
    parser.add_argument("--epoch-pairs", type=int, default=64, help="pairs for the whole-epoch part (0 = skip)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the whole-epoch part (the first is warm-up)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--jit", default="auto", choices=("auto", "on", "off"))
    parser.add_argument("--precision", default="float32", choices=("float32", "mixed_float16", "mixed_bfloat16"))
    parser.add_argument("--reference-images", default="uint8", choices=("uint8", "float32"))
    parser.add_argument("--reference-decode", default="segkit", choices=("segkit", "reference"),
                        help="decode the reference's arrays with segkit's readers (default) or its own argmin")
    add_onednn_option(parser)
    add_worker_options(parser)
    parser.add_argument("--cache", default="none", help=argparse.SUPPRESS)
    parser.add_argument("--model-side", type=int, default=MODEL_SIDE, help=argparse.SUPPRESS)
    parser.add_argument("--max-seconds", type=float, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--determinism", default="segkit", choices=("segkit", "off"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if ran_as_worker(args, run_worker):
        return
    apply_onednn(args.onednn)
    ensure_pairs(args.data, max(args.pairs, args.epoch_pairs))
    print(machine())
    print(f"batch {args.batch_size}, jit {args.jit}, precision {args.precision}, oneDNN {args.onednn}, "
          f"reference images {args.reference_images}, reference decode {args.reference_decode}, "
          f"patch {os.environ.get('SEGKIT_BENCH_PATCH', 'none')}\n")

    first: dict[str, list[dict]] = {"reference": [], "segkit": []}
    if args.pairs:
        for round_ in range(args.rounds):
            for side in ("reference", "segkit"):
                result = worker(SCRIPT, worker_args(args, side, "none", args.pairs, 1, args.steps))
                first[side].append(result)
                print(f"[{args.pairs} pairs, round {round_ + 1}] {side:9s} data ready {result['data_ready_s']:6.2f} s, "
                      f"first step {result['first_step_s']:6.2f} s ({result['first_step_from_start_s']:.2f} s "
                      f"from process start), steps {args.warmup + 1}..{args.steps}: {result['images_per_s']:.2f} img/s "
                      f"({result['images_per_cpu_s']:.2f} per CPU-s; load {result['load']})",
                      flush=True)

    epochs: dict[str, list[dict]] = {"reference": [], "segkit none": [], "segkit memory": []}
    if args.epoch_pairs:
        for round_ in range(args.rounds):
            for name in epochs:
                side, cache = (name.split() + ["none"])[:2]
                result = worker(SCRIPT, worker_args(args, side, cache, args.epoch_pairs, args.epochs, 0))
                epochs[name].append(result)
                print(f"[{args.epoch_pairs} pairs x {args.epochs} epochs, round {round_ + 1}] {name:13s} "
                      f"epochs 2..{args.epochs}: {result['images_per_s']:.2f} img/s ({result['images_per_cpu_s']:.2f} per CPU-s; "
                      f"load {result['load']})", flush=True)

    print("\nmedians over rounds")
    rows = []
    keys = ("first_step_s", "images_per_s", "images_per_cpu_s", "first_step_from_start_s")
    if args.pairs:
        ref, seg = ({k: median([r[k] for r in first[s]]) for k in keys} for s in ("reference", "segkit"))
        rows.append([f"time to first step, {args.pairs} pairs (s)", ref["first_step_s"], seg["first_step_s"],
                     seg["first_step_s"] / ref["first_step_s"], "", "<= 0.25"])
        rows.append(["  same, from process start (s)", ref["first_step_from_start_s"],
                     seg["first_step_from_start_s"], seg["first_step_from_start_s"] / ref["first_step_from_start_s"],
                     "", ""])
        rows.append([f"img/s, {args.pairs} pairs, steps {args.warmup + 1}..{args.steps}", ref["images_per_s"],
                     seg["images_per_s"], seg["images_per_s"] / ref["images_per_s"],
                     seg["images_per_cpu_s"] / ref["images_per_cpu_s"], ">= 1.0"])
    if args.epoch_pairs:
        ref = {k: median([r[k] for r in epochs["reference"]]) for k in keys}
        for name in ("segkit none", "segkit memory"):
            seg = {k: median([r[k] for r in epochs[name]]) for k in keys}
            rows.append([f"img/s, {args.epoch_pairs} pairs, epochs 2..{args.epochs}, cache {name.split()[1]}",
                         ref["images_per_s"], seg["images_per_s"], seg["images_per_s"] / ref["images_per_s"],
                         seg["images_per_cpu_s"] / ref["images_per_cpu_s"], ">= 1.0"])
    print(table(rows, ["figure", "reference", "segkit", "segkit/ref", "per CPU-s", "goal"]))


if __name__ == "__main__":
    main()
