"""Resumable training: an epoch-end checkpoint with the callbacks' state, and clean interruption.

After every completed epoch, ``checkpoints/last.keras`` (weights and optimizer state) and
``checkpoints/state.json`` (epoch, the reducer's, early stopping's and best-checkpoint's counters)
are written atomically, with the random state of every layer that draws random numbers (dropout:
without it a resumed run would drop other units than the uninterrupted one). SIGINT/SIGTERM
abandon the running epoch at the next step, so the last
checkpoint is always of a whole epoch and ``--resume`` repeats exactly what was lost.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras

from segkit.errors import RunStateError
from segkit.toml_io import write_atomic

LAST_MODEL = "checkpoints/last.keras"
STATE = "checkpoints/state.json"
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
    def handle(number: int, frame: Any) -> None:
        flag.signal_name = signal.Signals(number).name

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the resumable state after each epoch and restores the other callbacks' counters.

    Must come after the callbacks whose state it keeps: their ``on_train_begin`` resets them,
    and this one's runs afterwards to put the saved values back.
    """

    def __init__(self, output_dir: Path, stateful: Sequence[Any], flag: InterruptFlag,
                 restored: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.output_dir = output_dir
        self.stateful = list(stateful)
        self.flag = flag
        self.restored = restored
        self.signal_after = os.environ.get(SIGNAL_AFTER_EPOCH_ENV, "")

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        for callback, counters in zip(self.stateful, (self.restored or {}).get("callbacks", [])):
            for name, value in counters.items():
                setattr(callback, name, value)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._test_signal()
        if self.flag:
            raise TrainingInterrupted(self.flag.signal_name)

    on_test_batch_end = on_train_batch_end

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        temporary = self.output_dir / "checkpoints" / ".last.tmp.keras"
        temporary.parent.mkdir(parents=True, exist_ok=True)
        self.model.save(temporary)
        temporary.replace(self.output_dir / LAST_MODEL)
        self._write_state({"epoch": epoch + 1, "finished": False,
                           "callbacks": [_counters(c) for c in self.stateful],
                           "seed_states": seed_states(self.model)})
        if self.flag:
            raise TrainingInterrupted(self.flag.signal_name)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        # Reached only when fit returns normally: all epochs done or early stopping.
        path = self.output_dir / STATE
        if path.exists():
            self._write_state({**json.loads(path.read_text(encoding="utf-8")), "finished": True})

    def _write_state(self, state: dict[str, Any]) -> None:
        write_atomic(self.output_dir / STATE, json.dumps(state, indent=2) + "\n")

    def _test_signal(self) -> None:
        name, _, epoch = self.signal_after.partition(":")
        if name and int(epoch) <= completed_epochs(self.output_dir):
            self.signal_after = ""
            os.kill(os.getpid(), signal.Signals[name])


def read_state(output_dir: Path) -> dict[str, Any]:
    """The saved state of an interrupted run, or a RunStateError saying there is none."""
    path = output_dir / STATE
    if not path.exists() or not (output_dir / LAST_MODEL).exists():
        raise RunStateError(f"{output_dir}: no resumable checkpoint (checkpoints/state.json); "
                            "train without --resume")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        int(state["epoch"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RunStateError(f"{path}: damaged ({exc}); train again with --overwrite") from None
    if state.get("finished"):
        raise RunStateError(f"{output_dir}: this run finished after epoch {state['epoch']}; nothing to resume "
                            "(raise train.epochs in a new output folder, or --overwrite)")
    return state


def completed_epochs(output_dir: Path) -> int:
    """Epochs with a checkpoint in ``output_dir`` (0 when none finished)."""
    try:
        return int(json.loads((output_dir / STATE).read_text(encoding="utf-8"))["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def restore_weights(model: Any, output_dir: Path, state: dict[str, Any]) -> None:
    """Weights, optimizer state and layers' random state of the last completed epoch into a model
    freshly compiled by ``components.compile_model`` (which builds the optimizer, so its slots have
    somewhere to go)."""
    model.load_weights(output_dir / LAST_MODEL)
    restore_seed_states(model, state.get("seed_states", []), output_dir / STATE)
