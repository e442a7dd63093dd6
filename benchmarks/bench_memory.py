"""Peak RSS of training at 64 and at 512 pairs: segkit's streaming pipeline vs the reference approach.

    .venv/bin/python benchmarks/bench_memory.py [--small 64] [--large 512] [--scaled 4096] [--steps 6] [--rounds 2]

Each figure is the ``VmHWM`` (peak resident set) of a fresh process that imports TensorFlow, builds
the benchmark FlexUNet (256x256, num_layers 6, base_filters 16), prepares the data its way and
trains ``--steps`` steps of batch ``--batch-size`` (the worker of ``bench_train.py``, so the code
path is the same). segkit runs with ``cache = "none"`` (``--cache memory`` to see the cache's
cost). Goals: segkit grows <= 15% from ``--small`` to ``--large`` pairs, and its peak at
``--large`` pairs is <= 0.5x the reference's. "before data" is the RSS once TensorFlow and the
model are loaded, what every run pays whatever its data.

``--scaled N`` adds a third size: N pairs, the ``--large`` generated pairs repeated by hard links
(a process decodes and holds N pairs whatever their pixels), to show where the reference's
whole-set arrays outgrow the ~1.3 GiB that TensorFlow and the training step take in both.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit.project import DEFAULT_DATA, ensure_pairs, linked_pairs
from benchkit.tables import machine, median, table
from benchkit.workers import add_onednn_option, apply_onednn, worker

TRAIN = Path(__file__).resolve().parent / "bench_train.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=64)
    parser.add_argument("--large", type=int, default=512)
    parser.add_argument("--scaled", type=int, default=0, help="also N pairs, linked copies of --large (0 = skip)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cache", default="none", choices=("none", "memory"))
    parser.add_argument("--reference-images", default="uint8", choices=("uint8", "float32"))
    add_onednn_option(parser)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    apply_onednn(args.onednn)
    ensure_pairs(args.data, args.large)
    print(machine())
    print(f"batch {args.batch_size}, {args.steps} steps, segkit cache {args.cache}, reference images "
          f"{args.reference_images}, patch {os.environ.get('SEGKIT_BENCH_PATCH', 'none')}\n")
    sizes = {args.small: args.data, args.large: args.data}
    if args.scaled:
        sizes[args.scaled] = linked_pairs(args.data, args.scaled)
    peaks: dict[tuple[str, int], list[dict]] = {}
    for round_ in range(args.rounds):
        for pairs, data in sizes.items():
            for side in ("reference", "segkit"):
                result = worker(TRAIN, [
                    "--side", side, "--cache", args.cache if side == "segkit" else "none", "--pairs", str(pairs),
                    "--epochs", "1", "--steps", str(args.steps), "--warmup", "1", "--batch-size", str(args.batch_size),
                    "--data", str(data), "--reference-images", args.reference_images])
                peaks.setdefault((side, pairs), []).append(result)
                print(f"[round {round_ + 1}] {side:9s} {pairs:4d} pairs: peak {result['peak_rss_mb']:7.0f} MiB "
                      f"(before data {result['rss_before_data_mb']:.0f} MiB)", flush=True)

    def peak(side: str, pairs: int) -> float:
        return median([r["peak_rss_mb"] for r in peaks[(side, pairs)]])

    def base(side: str, pairs: int) -> float:
        return median([r["rss_before_data_mb"] for r in peaks[(side, pairs)]])

    print("\nmedians over rounds (MiB)")
    rows = []
    for side in ("reference", "segkit"):
        small, large = peak(side, args.small), peak(side, args.large)
        rows.append([side, base(side, args.large), small, large, large / small - 1,
                     "<= 15%" if side == "segkit" else ""])
    print(table(rows, ["", "before data", f"peak {args.small}", f"peak {args.large}", "growth", "goal"]))
    ratio = peak("segkit", args.large) / peak("reference", args.large)
    print(f"\nsegkit/reference peak at {args.large} pairs: {ratio:.3f} (goal <= 0.5)")
    over = [(peak(s, args.large) - base(s, args.large)) for s in ("reference", "segkit")]
    print(f"peak above 'before data' at {args.large} pairs: reference {over[0]:.0f} MiB, segkit {over[1]:.0f} MiB "
          f"(ratio {over[1] / over[0]:.3f})")
    if args.scaled:
        print(f"at {args.scaled} pairs: reference {peak('reference', args.scaled):.0f} MiB, segkit "
              f"{peak('segkit', args.scaled):.0f} MiB, segkit/reference "
              f"{peak('segkit', args.scaled) / peak('reference', args.scaled):.3f}; segkit's growth from "
              f"{args.small} pairs {peak('segkit', args.scaled) / peak('segkit', args.small) - 1:+.1%}")


if __name__ == "__main__":
    main()
