"""Importing TensorFlow quietly, seeding, and turning plugin build failures into user errors."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from segkit.errors import ProjectError, SegkitError

T = TypeVar("T")


def import_tensorflow(verbose: bool = False) -> Any:
    """``tensorflow``, with its C++ and Python logging hidden unless ``verbose``."""
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        warnings.filterwarnings("ignore", module=r"(tensorflow|keras)(\..*)?$")
    with _stderr_silenced(not verbose):
        import tensorflow as tf

    if not verbose:
        tf.get_logger().setLevel(logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)
    return tf


def limit_model_threads(threads: int) -> None:
    """TensorFlow's op pools (within and between ops) at ``threads`` each, for processes that share the
    cores (a cohort's workers). Before TensorFlow's first op: later, TensorFlow raises RuntimeError."""
    tf = import_tensorflow()
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


@contextlib.contextmanager
def _stderr_silenced(active: bool) -> Iterator[None]:
    """Hide what TensorFlow's C++ side prints while loading (absl writes it before any log level applies)."""
    if not active:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Same seed, same run on CPU: Python, NumPy and TensorFlow RNGs, and deterministic kernels
    unless ``deterministic`` is False (see :func:`deterministic_for`)."""
    import keras
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    keras.utils.set_random_seed(seed)
    # TensorFlow reads a (0, op_seed) pair specially and cannot compare it when op_seed is a
    # tensor (tf.data's per-epoch seeds are), so its global seed, which it takes modulo 2**31 - 1,
    # is kept away from 0 (seed + 1 for every seed below 2**31 - 2).
    tf.random.set_seed(seed % (2**31 - 2) + 1)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()  # a process-wide switch: an earlier run may have set it


def deterministic_for(jit_compile: str) -> bool:
    """Whether a run with ``[train] jit_compile`` gets deterministic kernels.

    Keras compiles without XLA whenever op determinism is on, whatever ``jit_compile`` says
    (``keras.src.trainers.trainer.model_supports_jit``), so "on" would silently mean "off".
    A user who asks for XLA gets it, seeded but not bit-exact from run to run.
    """
    return jit_compile != "on"


def configure_precision(policy: str) -> None:
    """Keras's global dtype policy; models keep their softmax in float32 (FlexUNet does)."""
    import keras

    keras.mixed_precision.set_global_policy(policy)


def jit_setting(choice: str) -> bool | str:
    """``[train] jit_compile``: 'auto' lets Keras decide (off on CPU, and off with op determinism), 'on'/'off' force it."""
    return {"on": True, "off": False}.get(choice, "auto")


def build_with(source: str, key: str, builder: Callable[[Any], T], request: Any) -> T:
    """Call a plugin builder; a ValueError from it becomes a one-line error on ``key``."""
    try:
        return builder(request)
    except SegkitError:
        raise
    except ValueError as exc:
        raise ProjectError(source, key, str(exc)) from None
