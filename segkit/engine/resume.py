"""Resumable training: an epoch-end checkpoint with the callbacks' state, and clean interruption.

After every completed epoch the model (weights and optimizer state) goes to
``checkpoints/last-NNNN.keras``; then ``checkpoints/state.json`` (epoch, that file's name, the
reducer's, early stopping's and best-checkpoint's counters, and the random state of every layer
that draws random numbers, such as dropout) is committed; then the previous epoch's file is
removed (:mod:`segkit.run_state`). Every file goes through :mod:`segkit.durable`. SIGINT/SIGTERM
abandon the running epoch at the next step, so the last checkpoint is always of a whole epoch and
``--resume`` repeats exactly what was lost.
"""

from __future__ import annotations

import json
import math
import os
import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras

from segkit.durable import remove_temporaries, replace_durably, write_text_durably
from segkit.errors import RunStateError
from segkit.run_folder import (
    CHECKPOINT_DIR,
    CHECKPOINT_FILES,
    MODELS_DIR,
    STATE,
    checkpoint_name,
)
from segkit.run_state import checkpoint_path, completed_epochs
from segkit.stop_signals import stop_signals_handled

#: test-only: ``SIGNAL:EPOCH`` sends SIGNAL to this process at the first step after epoch EPOCH
#: is committed, so the resume tests interrupt at the same point on any machine
SIGNAL_AFTER_EPOCH_ENV = "SEGKIT_TEST_SIGNAL_AFTER_EPOCH"


class TrainingInterrupted(Exception):
    """Raised inside ``fit`` to abandon the running epoch after a signal."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class InterruptFlag:
    """Set by the signal handler; checked by :class:`EpochCheckpoint` after every step."""

    def __init__(self) -> None:
        self.signal_name = ""

    def __bool__(self) -> bool:
        return bool(self.signal_name)


@contextmanager
def interrupts_caught(flag: InterruptFlag) -> Iterator[None]:
    """SIGINT and SIGTERM set ``flag`` instead of killing the process mid-write."""
    def handle(name: str) -> None:
        flag.signal_name = name

    with stop_signals_handled(handle):
        yield


def save_model(model: Any, path: Path, run_folder: Path) -> None:
    """``model.save`` through a temporary file, so a kill or a full disk keeps the previous file."""
    replace_durably(path, lambda temporary: model.save(temporary), run_folder)


def _counters(callback: Any) -> dict[str, Any]:
    return {name: getattr(callback, name) for name in ("wait", "best", "cooldown_counter") if hasattr(callback, name)}


def _seed_generators(model: Any) -> list[Any]:
    """Every ``keras.random.SeedGenerator`` of the model's layers, in layer order."""
    found: dict[int, Any] = {}
    for layer in model._flatten_layers(include_self=True):  # Keras's own walk over nested layers
        for generator in getattr(layer, "_seed_generators", []):
            found.setdefault(id(generator), generator)
    return list(found.values())


def seed_states(model: Any) -> list[list[int]]:
    return [[int(v) for v in keras.ops.convert_to_numpy(g.state.value)] for g in _seed_generators(model)]


def restore_seed_states(model: Any, states: list[list[int]], path: Path) -> None:
    """Put the layers' random state back: without it dropout draws other masks after a resume."""
    generators = _seed_generators(model)
    if len(generators) != len(states):
        raise RunStateError(f"{path}: seed_states: {len(states)} random states for a model with "
                            f"{len(generators)} random layers; train again with --overwrite")
    for generator, state in zip(generators, states):
        generator.state.assign(keras.ops.convert_to_tensor(state, dtype=generator.state.dtype))


class BestCheckpoint(keras.callbacks.Callback):
    """Keras's ``ModelCheckpoint(save_best_only=True)`` on ``val_loss``, written through a temporary file.

    ``best`` is the counter :class:`EpochCheckpoint` keeps across a resume.
    """

    def __init__(self, path: Path, run_folder: Path) -> None:
        super().__init__()
        self.path, self.run_folder = path, run_folder
        self.best = math.inf

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        current = (logs or {}).get("val_loss")
        if current is not None and float(current) < self.best:  # never for NaN, as ModelCheckpoint
            self.best = float(current)
            save_model(self.model, self.path, self.run_folder)


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the resumable state after each epoch and restores the other callbacks' counters.

    Must come after the callbacks whose state it keeps: their ``on_train_begin`` resets them,
    and this one's runs afterwards to put the saved values back.
    """

    def __init__(self, output_dir: Path, stateful: Mapping[str, Any], flag: InterruptFlag,
                 restored: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.output_dir = output_dir
        self.stateful = dict(stateful)
        self.flag = flag
        self.restored = restored
        self.signal_after = os.environ.get(SIGNAL_AFTER_EPOCH_ENV, "")

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        for folder in (CHECKPOINT_DIR, MODELS_DIR):  # what a kill -9 mid-write left
            remove_temporaries(self.output_dir / folder)
        for role, counters in (self.restored or {}).get("callbacks", {}).items():
            for name, value in counters.items() if role in self.stateful else ():
                setattr(self.stateful[role], name, value)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._test_signal()
        if self.flag:
            raise TrainingInterrupted(self.flag.signal_name)

    on_test_batch_end = on_train_batch_end

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        name = checkpoint_name(epoch + 1)
        folder = self.output_dir / CHECKPOINT_DIR
        save_model(self.model, folder / name, self.output_dir)
        self._write_state({"epoch": epoch + 1, "finished": False, "checkpoint": name,
                           "callbacks": {role: _counters(c) for role, c in self.stateful.items()},
                           "seed_states": seed_states(self.model)})
        for older in folder.glob(CHECKPOINT_FILES):  # only now is the older checkpoint no longer needed
            if older.name != name:
                older.unlink(missing_ok=True)
        if self.flag:
            raise TrainingInterrupted(self.flag.signal_name)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        # Reached only when fit returns normally: all epochs done or early stopping.
        path = self.output_dir / STATE
        if path.exists():
            self._write_state({**json.loads(path.read_text(encoding="utf-8")), "finished": True})

    def _write_state(self, state: dict[str, Any]) -> None:
        write_text_durably(self.output_dir / STATE, json.dumps(state, indent=2) + "\n", self.output_dir)

    def _test_signal(self) -> None:
        name, _, epoch = self.signal_after.partition(":")
        if name and int(epoch) <= completed_epochs(self.output_dir):
            self.signal_after = ""
            os.kill(os.getpid(), signal.Signals[name])


def restore_weights(model: Any, output_dir: Path, state: dict[str, Any]) -> None:
    """Weights, optimizer state and layers' random state of the last completed epoch into a model
    freshly compiled by ``components.compile_model`` (which builds the optimizer, so its slots have
    somewhere to go)."""
    path = checkpoint_path(output_dir, state)
    try:
        model.load_weights(path)
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file is the user's to replace
        detail = " ".join(str(exc).split())[:160]
        raise RunStateError(f"{path}: cannot be loaded ({exc.__class__.__name__}: {detail}); "
                            "train again with --overwrite") from None
    restore_seed_states(model, state["seed_states"], output_dir / STATE)
