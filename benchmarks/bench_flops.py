"""Compute efficiency: FLOPs per image of the benchmark FlexUNet, achieved GFLOP/s in training, % of peak.

    .venv/bin/python benchmarks/bench_flops.py [--images-per-s X] [--onednn default|on|off|both]

* FLOPs of one forward pass, counted twice: analytically from the layers (2 x multiply-adds of
  every convolution and transposed convolution; pooling, activations and the softmax are a few
  FLOPs per value and left out) and by TensorFlow's profiler on the frozen forward graph.
* Training costs ~3x the forward pass (forward, gradient w.r.t. activations, gradient w.r.t.
  weights), the usual estimate; achieved GFLOP/s = 3 x forward FLOPs x training images/s.
* Training images/s: the steady state of segkit training (``bench_train.py``'s worker:
  ``cache = "memory"``, whole epochs after the first), or ``--images-per-s`` if given.
* Peak: cores x FMA units per core x FP32 lanes x 2 FLOPs per FMA x clock, with the lanes read from
  the CPU flags (AVX-512: 16, AVX2: 8), ``--fma-units`` (2 on current x86 server cores) and the
  clock from ``/proc/cpuinfo`` (``--ghz`` to override). Under a VM the nominal clock is what is
  visible; turbo, if any, is not counted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit.project import BASE_FILTERS, DEFAULT_DATA, MODEL_SIDE, NUM_CLASSES, NUM_LAYERS, ensure_pairs
from benchkit.tables import machine, table
from benchkit.workers import worker

TRAIN = Path(__file__).resolve().parent / "bench_train.py"


def analytic_flops(model: object) -> int:
    """2 x multiply-adds of the convolutions of one image (batch 1)."""
    import keras

    total = 0
    for layer in model.layers:  # type: ignore[attr-defined]
        if isinstance(layer, keras.layers.Conv2DTranspose):
            _, h, w, c_in = layer.input.shape
            kh, kw = layer.kernel_size
            total += 2 * h * w * kh * kw * c_in * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_in = layer.input.shape
            _, oh, ow, _ = layer.output.shape
            kh, kw = layer.kernel_size
            total += 2 * oh * ow * kh * kw * c_in * layer.filters
    return int(total)


def profiler_flops(model: object) -> int | None:
    """FLOPs TensorFlow's profiler counts on the frozen forward graph of one image."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    shape = (1, *model.input_shape[1:])  # type: ignore[attr-defined]
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(  # type: ignore[operator]
        tf.TensorSpec(shape, tf.float32))
    frozen = convert_variables_to_constants_v2(function)
    tf.get_logger().setLevel("ERROR")  # the v1 profiler's deprecation notices
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op",
                                            options=options)
    return int(profile.total_float_ops) if profile is not None else None


def peak_gflops(fma_units: int, ghz: float | None) -> tuple[float, str]:
    flags, mhz = set(), 0.0
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
        if line.startswith("cpu MHz") and not mhz:
            mhz = float(line.split(":", 1)[1])
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    clock = ghz if ghz else mhz / 1000
    cores = os.cpu_count() or 1
    peak = cores * fma_units * lanes * 2 * clock
    return peak, (f"{cores} cores x {fma_units} FMA units x {lanes} FP32 lanes "
                  f"({'AVX-512' if lanes == 16 else 'AVX2' if lanes == 8 else 'SSE'}) x 2 x {clock:.2f} GHz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-per-s", type=float, default=None, help="training rate to use instead of measuring")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--fma-units", type=int, default=2)
    parser.add_argument("--ghz", type=float, default=None)
    parser.add_argument("--onednn", default="default", choices=("default", "on", "off", "both"),
                        help="TF_ENABLE_ONEDNN_OPTS for the measured training ('default': TensorFlow's own; "
                             "'both': default, then off)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    print(machine())

    env = dict(os.environ)
    forward_onednn = "0" if args.onednn == "off" else "1"
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = forward_onednn  # for the forward timing in this process
    from segkit.engine.runtime import import_tensorflow

    import_tensorflow()  # quietly; the environment set here is not passed on to the measured runs
    os.environ.clear()
    os.environ.update(env)
    import keras
    import numpy as np

    from segkit_flexunet.flexunet import build_flexunet

    model = build_flexunet(image_height=MODEL_SIDE, image_width=MODEL_SIDE, image_channels=3,
                           num_classes=NUM_CLASSES, base_filters=BASE_FILTERS,
                           num_layers=NUM_LAYERS)
    analytic = analytic_flops(model)
    profiled = profiler_flops(model)
    print(f"FlexUNet {MODEL_SIDE}x{MODEL_SIDE}, num_layers {NUM_LAYERS}, base_filters "
          f"{BASE_FILTERS}: {model.count_params():,} parameters")
    print(f"forward FLOPs per image: analytic {analytic / 1e9:.2f} G, TF profiler (frozen graph) "
          f"{profiled / 1e9 if profiled else float('nan'):.2f} G")
    train_flops = 3 * analytic
    print(f"training FLOPs per image (3x forward): {train_flops / 1e9:.2f} G")
    peak, how = peak_gflops(args.fma_units, args.ghz)
    print(f"peak: {how} = {peak:.0f} GFLOP/s FP32")
    batch = np.random.default_rng(0).random((8, MODEL_SIDE, MODEL_SIDE, 3), dtype=np.float32)
    model.predict_on_batch(batch)
    started = time.perf_counter()
    for _ in range(5):
        model.predict_on_batch(batch)
    forward = 5 * 8 * analytic / (time.perf_counter() - started) / 1e9
    print(f"forward pass (predict_on_batch, batch 8, oneDNN {'on' if forward_onednn == '1' else 'off'}): "
          f"{forward:.0f} GFLOP/s = {100 * forward / peak:.0f}% of that peak (above 100%: the clock runs above "
          "the nominal one the VM shows)")
    del model, keras

    rates: list[tuple[str, float]] = []
    if args.images_per_s:
        rates.append(("given", args.images_per_s))
    else:
        ensure_pairs(args.data, args.pairs)
        settings = ["default", "off"] if args.onednn == "both" else [args.onednn]
        for setting in settings:
            env = dict(os.environ)
            if setting != "default":
                os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if setting == "on" else "0"
            result = worker(TRAIN, [
                "--side", "segkit", "--cache", "memory", "--pairs", str(args.pairs), "--epochs", str(args.epochs),
                "--steps", "0", "--batch-size", str(args.batch_size), "--data", str(args.data)])
            os.environ.clear()
            os.environ.update(env)
            label = f"segkit train, oneDNN {'as TensorFlow sets it' if setting == 'default' else setting}"
            rates.append((label, result["images_per_s"]))
            print(f"{label}: {result['images_per_s']:.2f} img/s (load {result['load']})", flush=True)
    rows = [[label, rate, train_flops * rate / 1e9, 100 * train_flops * rate / 1e9 / peak] for label, rate in rates]
    print()
    print(table(rows, ["training", "img/s", "GFLOP/s", "% of peak"]))


if __name__ == "__main__":
    main()
