"""CPU training speed by compile setting: ``[train] jit_compile`` off/on x ``[train] precision``.

    .venv/bin/python benchmarks/bench_xla.py [--precisions float32,mixed_bfloat16] [--rounds 2] [--onednn default]

segkit training (``bench_train.py``'s worker: project file, ``make_training_dataset`` with
``cache = "memory"``, ``compile_model(jit_compile=...)``, ``configure_precision``) of the benchmark
FlexUNet (256x256, num_layers 6, base_filters 16) on ``--pairs`` pairs; images/s over the whole
epochs after the first, every configuration in turn, A B C D A B C D. The first-step time shows
the compile cost (XLA compiles the step on the first call). A run still going ``--max-seconds``
after its data is ready stops there and counts the steps after its first (bfloat16 without oneDNN
is that slow). ``--onednn on|off`` sets ``TF_ENABLE_ONEDNN_OPTS`` (default: TensorFlow's own, on
for x86 CPUs). The default worth choosing for CPUs is the fastest row whose loss is sane.

Op determinism: Keras compiles without XLA whenever op determinism is on
(``keras.src.trainers.trainer.model_supports_jit``), so ``segkit train`` turns deterministic
kernels off when ``jit_compile = "on"`` (``runtime.deterministic_for``) and keeps them otherwise.
The rows here run as segkit train does; ``--determinism off`` turns them off in the XLA-off rows
too. The "XLA used" column is the model's effective ``jit_compile`` after ``compile``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit.project import DEFAULT_DATA, ensure_pairs
from benchkit.tables import machine, median, table
from benchkit.workers import add_onednn_option, apply_onednn, worker

TRAIN = Path(__file__).resolve().parent / "bench_train.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--jit", default="off,on")
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=60,
                        help="stop a run this long after its data is ready (its rate then counts the steps after the first)")
    add_onednn_option(parser)
    parser.add_argument("--determinism", default="segkit", choices=("off", "segkit"),
                        help="deterministic kernels as segkit train sets them (off only with XLA), or off in every row")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    apply_onednn(args.onednn)
    ensure_pairs(args.data, args.pairs)
    print(machine())
    print(f"{args.pairs} pairs, batch {args.batch_size}, epochs 2..{args.epochs} timed, oneDNN {args.onednn}, "
          f"op determinism {args.determinism}\n")
    configs = [(jit, precision) for precision in args.precisions.split(",") for jit in args.jit.split(",")]
    results: dict[tuple[str, str], list[dict]] = {c: [] for c in configs}
    for round_ in range(args.rounds):
        for jit, precision in configs:
            result = worker(TRAIN, [
                "--side", "segkit", "--cache", "memory", "--pairs", str(args.pairs), "--epochs", str(args.epochs),
                "--steps", "0", "--batch-size", str(args.batch_size), "--data", str(args.data), "--jit", jit,
                "--precision", precision, "--max-seconds", str(args.max_seconds), "--determinism", args.determinism])
            results[(jit, precision)].append(result)
            stopped = f" stopped after {result['steps']} steps (--max-seconds)" if result["stopped_early"] else ""
            print(f"[round {round_ + 1}] jit {jit:3s} (XLA used: {result['jit_effective']!s:5s}) {precision:15s} "
                  f"{result['images_per_s']:6.2f} img/s "
                  f"({result['images_per_cpu_s']:.2f} per CPU-s), first step {result['first_step_s']:6.1f} s, "
                  f"loss {result.get('last_loss', float('nan')):.4f}{stopped} (load {result['load']})", flush=True)
    base = median([r["images_per_s"] for r in results[configs[0]]])
    rows = []
    for jit, precision in configs:
        rate = median([r["images_per_s"] for r in results[(jit, precision)]])
        first = median([r["first_step_s"] for r in results[(jit, precision)]])
        cpu = median([r["images_per_cpu_s"] for r in results[(jit, precision)]])
        used = results[(jit, precision)][0]["jit_effective"]
        rows.append([f"jit {jit}", str(used), precision, rate, rate / base, cpu, first])
    print("\nmedians over rounds")
    print(table(rows, ["jit_compile", "XLA used", "precision", "img/s", f"/ jit {configs[0][0]} {configs[0][1]}",
                              "img per CPU-s", "first step s"]))


if __name__ == "__main__":
    main()
