"""Shared pieces of the side-by-side benchmarks, one module a job: ``project`` (data and the project
file), ``reference`` (the reference approach), ``workers`` (fresh processes), ``clock`` (timing and
memory inside a worker) and ``tables`` (what is printed).

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
  ``components.build_model`` / ``compile_model``, ``engine.pipeline_settings`` and
  ``make_training_dataset``.
* The reference approach (TensorFlowFlexUNet's ``ImageCategorizedMaskDataset.create``): every
  image decoded and resized to the model size into one uint8 array ``X``, every mask into one
  int8 one-hot array ``Y``, before ``model.fit(X, Y)``. Decoding uses segkit's own readers, so
  both sides pay the same per-file cost; only *when* and *how much is held* differ. The model
  takes ``[0, 1]`` floats, so the reference model is ``Rescaling(1/255)`` in front of the same
  FlexUNet (one multiply per input value, the reference's own model divides by 255 inside too).
  ``--reference-images float32`` stores ``X`` as float32 in ``[0, 1]`` instead (4x the bytes).
"""

import os

# every benchmark and its workers import this package first: quiet TensorFlow before it loads
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
