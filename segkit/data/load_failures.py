"""The DataError a dataset plugin's ``load`` raised inside tf.data, kept for the CLI to report.

Plugins' ``load`` runs inside ``tf.numpy_function``; TensorFlow hands ``model.fit`` only an
``UnknownError`` whose text holds the Python traceback, so the one-line DataError would be lost.
The pipeline wraps each loader in :func:`keeping_load_failure`; the CLI (``segkit.cli.errors``)
calls :func:`take_load_failure` to report the original instead. A module of its own so that
printing an error does not import the pipeline (numpy and the decoders).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from segkit.errors import DataError

T = TypeVar("T")

#: The first DataError a dataset plugin raised inside tf.data that nobody has claimed yet.
_load_failures: list[DataError] = []
_load_failures_lock = threading.Lock()


def take_load_failure() -> DataError | None:
    """The DataError a loader raised inside tf.data since the last call, if any (and forget it)."""
    with _load_failures_lock:
        return _load_failures.pop() if _load_failures else None


def keeping_load_failure(load: Callable[[Any], T]) -> Callable[[Any], T]:
    """``load``, which also keeps the first DataError it raises for :func:`take_load_failure`."""

    def run(index: Any) -> T:
        try:
            return load(index)
        except DataError as exc:
            with _load_failures_lock:
                if not _load_failures:
                    _load_failures.append(exc)
            raise

    return run
