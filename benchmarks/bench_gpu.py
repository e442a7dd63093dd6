"""GPU: 512x512 FlexUNet training images/s, float32 vs mixed_float16, XLA off vs on (a prepared script).

    .venv/bin/python benchmarks/bench_gpu.py            # on a GPU machine, < 6 minutes
    .venv/bin/python benchmarks/bench_gpu.py --smoke    # anywhere: tiny sizes, checks the script runs

Prints the GPU model, then trains the FlexUNet (512x512, num_layers 6, base_filters 16) through
segkit's real path (``bench_train.py``'s worker: project file, ``make_training_dataset`` with
``cache = "memory"``, ``configure_precision``, ``compile_model(jit_compile=...)``) for each of
float32 / mixed_float16 x jit off / on, one fresh process each, and reports images/s over the
epochs after the first, and the first-step (compile) time. These runs have op determinism off
(XLA-on runs have it off in segkit train too: Keras drops XLA under it); a last run shows float32
with segkit's own XLA-off setting (deterministic kernels on) for the cost of it. A configuration that
fails is reported and skipped; one that does not fit the time budget is skipped, saying so.

Then the whole-slide case (issue 27): ``bench_slide_throughput.py`` on a ``--slide-side`` square slide
(the benchmarks' FlexUNet at level 0, batch ``--slide-batch``), one round of ``segment_slide`` vs the
same tiles through ``segkit infer``, under ``KERAS_BACKEND=--slide-backend`` (``jax`` by default; the
engine's model calls go through Keras, so the backend is Keras's choice), with ``--gpu-peak-gflops``
as the peak its GFLOP/s are read against. ``--slide-side 0`` skips it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit.project import BASE_FILTERS, NUM_LAYERS, ensure_pairs
from benchkit.tables import machine, table
from benchkit.workers import worker

TRAIN = Path(__file__).resolve().parent / "bench_train.py"
SLIDE_THROUGHPUT = Path(__file__).resolve().parent / "bench_slide_throughput.py"


def gpu_model() -> str:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "no nvidia-smi (TensorFlow's device name is printed per run)"


def slide_case(args: argparse.Namespace) -> None:
    """The slide throughput script in its own process, under the chosen Keras backend; its table printed."""
    command = [sys.executable, str(SLIDE_THROUGHPUT)]
    command += ["--smoke"] if args.smoke else ["--slide-side", str(args.slide_side), "--rounds", "1", "--batch-size",
                                               str(args.slide_batch)]
    if args.gpu_peak_gflops:
        command += ["--peak-gflops", str(args.gpu_peak_gflops)]
    print(f"\nwhole slide (KERAS_BACKEND={args.slide_backend}): {' '.join(command[1:])}", flush=True)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=max(60.0, args.budget),
                              env={**os.environ, "KERAS_BACKEND": args.slide_backend})
    except subprocess.TimeoutExpired:
        print(f"whole slide: skipped (past {max(60.0, args.budget):.0f} s)")
        return
    print(done.stdout if done.returncode == 0 else f"whole slide: failed (exit {done.returncode})\n"
          + done.stdout[-2000:] + done.stderr[-2000:], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on any machine (checks the script runs)")
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--precisions", default="float32,mixed_float16")
    parser.add_argument("--jit", default="off,on")
    parser.add_argument("--budget", type=float, default=330, help="seconds; later runs are skipped past it")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--slide-side", type=int, default=8192, help="the slide case's side (0: skip it)")
    parser.add_argument("--slide-batch", type=int, default=32)
    parser.add_argument("--slide-backend", default="jax", help="KERAS_BACKEND of the slide case")
    parser.add_argument("--gpu-peak-gflops", type=float, default=None,
                        help="the GPU's FP32 peak, for the slide case's share of it (e.g. 67000 for an H100/H200 SXM)")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.smoke:
        args.side, args.pairs, args.batch_size, args.epochs = 64, 8, 4, 2
    data = args.data or Path(tempfile.gettempdir()) / f"segkit-bench-gpu-{args.side}"
    print(f"GPU: {gpu_model()}")
    print(machine())
    ensure_pairs(data, args.pairs, side=args.side)
    print(f"FlexUNet {args.side}x{args.side}, num_layers {NUM_LAYERS}, base_filters {BASE_FILTERS}; "
          f"{args.pairs} pairs, batch {args.batch_size}, epochs 2..{args.epochs} timed\n", flush=True)
    rows = []
    # op determinism off everywhere, then segkit's own XLA-off setting (deterministic kernels) last
    configs = [(precision, jit, "off") for precision in args.precisions.split(",") for jit in args.jit.split(",")]
    configs.append((args.precisions.split(",")[0], args.jit.split(",")[0], "segkit"))
    for precision, jit, determinism in configs:
        if time.perf_counter() - started > args.budget:
            print(f"jit {jit} {precision} determinism {determinism}: skipped (past the {args.budget:.0f} s budget)")
            continue
        worker_args = ["--side", "segkit", "--cache", "memory", "--pairs", str(args.pairs), "--epochs",
                       str(args.epochs), "--steps", "0", "--batch-size", str(args.batch_size), "--data", str(data),
                       "--jit", jit, "--precision", precision, "--model-side", str(args.side),
                       "--determinism", determinism]
        note = "deterministic kernels (segkit's default)" if determinism == "segkit" else ""
        try:
            result = worker(TRAIN, worker_args, timeout=max(60.0, args.budget + 30))
        except (SystemExit, subprocess.TimeoutExpired) as failure:
            print(f"jit {jit} {precision} determinism {determinism}: failed ({failure})", flush=True)
            continue
        print(f"jit {jit:3s} (XLA used: {result['jit_effective']!s:5s}) {precision:14s} "
              f"{result['images_per_s']:8.1f} img/s, first step {result['first_step_s']:5.1f} s, "
              f"loss {result['last_loss']:.4f}, device {result['device']} {note}", flush=True)
        rows.append([f"jit {jit}", str(result["jit_effective"]), precision, result["images_per_s"],
                     result["first_step_s"], note])
    if rows:
        base = rows[0][3]
        print("\n" + table([[*r[:4], r[3] / base, *r[4:]] for r in rows],
                                  ["jit_compile", "XLA used", "precision", "img/s", f"/ {rows[0][0]} {rows[0][2]}",
                                   "first step s (compile + first decode)", "note"]))
    if args.slide_side:
        slide_case(args)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.smoke and args.data is None:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
