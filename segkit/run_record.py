"""A run's own record of its settings (``project.resolved.toml``) against the project as it is now.

Read without TensorFlow, so a project that no longer describes the trained model is refused in
a second, naming the keys, instead of after the import and the model load:

* ``eval``, ``infer`` and ``export`` need the model-defining keys (``[model]``, the classes, the
  mask's ignore colour) to be the ones the run trained with. They are not silently adopted from
  the record: the project file stays the one description of the model, and the refusal names the
  ``--set`` options that reproduce the training run.
* ``train --resume`` needs everything that shapes the numbers to be unchanged; only the keys in
  :data:`MAY_CHANGE_ON_RESUME` (more epochs, logging, outputs) may differ.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from segkit import toml_io
from segkit.errors import RunStateError
from segkit.project import Project
from segkit.run_folder import BEST_MODEL, RESOLVED_PROJECT
from segkit.run_state import read_state

#: what defines the trained network and how its outputs are read
MODEL_DEFINING = ("model.", "classes", "mask.ignore_color")
MAY_CHANGE_ON_RESUME = ("project.name", "project.output_dir", "train.epochs", "train.patience",
                        "train.tensorboard", "train.cache", "callbacks", "infer.", "instances.")


def recorded_settings(output_dir: Path) -> dict[str, Any] | None:
    """The run's resolved project, or None where the run has none (a model copied in by hand)."""
    path = output_dir / RESOLVED_PROJECT
    try:
        record = toml_io.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, toml_io.TOMLDecodeError, RecursionError) as exc:
        detail = " ".join(str(exc).split())[:120]
        raise RunStateError(f"{path}: the run's record of its settings cannot be read ({detail}); "
                            "restore it, or train again with --overwrite") from None
    if not isinstance(record.get("model"), dict):  # a record that says nothing of the model checks nothing
        raise RunStateError(f"{path}: the run's record of its settings has no [model] table; "
                            "restore it, or train again with --overwrite")
    return record


def _flat(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys of nested tables; lists (the classes, the callbacks) stay one value each."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def changed_settings(project: Project, recorded: Mapping[str, Any],
                     concerns: Callable[[str], bool]) -> list[tuple[str, Any, Any]]:
    """``(key, recorded, current)`` for each key ``concerns`` picks whose value differs.

    Keys only one side has (settings of another segkit version) are not compared.
    """
    was, now = _flat(recorded), _flat(toml_io.loads(project.resolved_toml()))
    return [(key, was[key], now[key]) for key in sorted(now) if key in was and concerns(key) and was[key] != now[key]]


def _tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _shown(value: Any) -> str:
    """A value for the one line: a list of tables (the classes) as its entries' names and colours."""
    if _tables(value):
        return "[" + ", ".join(" ".join(str(v) for v in entry.values()) for entry in value) + "]"
    return f"{value!r:.100}"


def _listed(changes: list[tuple[str, Any, Any]]) -> str:
    return ", ".join(f"{key} = {_shown(was)} (project: {_shown(now)})" for key, was, now in changes)


def _set_options(changes: list[tuple[str, Any, Any]]) -> str:
    """``--set KEY=VALUE`` for each changed key a ``--set`` can carry (not a whole list of tables)."""
    options = [f"--set {shlex.quote(key + '=' + toml_io.dumps({'v': was})[4:].strip())}"
               for key, was, _ in changes if not _tables(was)]
    return " ".join(options)


def check_trained_with(project: Project) -> Project:
    """``project`` when its model-defining keys are those the run trained with; else one line naming them."""
    recorded = recorded_settings(project.output_dir) if (project.output_dir / BEST_MODEL).exists() else None
    changes = changed_settings(project, recorded, lambda key: key.startswith(MODEL_DEFINING)) if recorded else []
    if changes:
        options = _set_options(changes)
        again = f" (or pass {options} as in training)" if options else ""
        raise RunStateError(f"{project.output_dir / BEST_MODEL}: was trained with {_listed(changes)}; put the "
                            f"project back or train again with --overwrite{again}")
    return project


def check_resumable(project: Project) -> None:
    """The run's state is usable and the project still trains the same numbers; else one line."""
    read_state(project.output_dir, project.train.epochs)
    recorded = recorded_settings(project.output_dir)
    if recorded is None:
        raise RunStateError(f"{project.output_dir / RESOLVED_PROJECT}: missing, so the run's settings are "
                            "unknown; restore it, or train again with --overwrite")
    changes = changed_settings(project, recorded, lambda key: not key.startswith(MAY_CHANGE_ON_RESUME))
    if changes:
        raise RunStateError(f"{project.output_dir}: the run was trained with {_listed(changes)}; --resume "
                            "continues only the same settings (only train.epochs, train.patience, logging and "
                            "outputs may change): put them back, or train again with --overwrite")


def resume_command(project_file: Path, overrides: list[str] | None) -> str:
    """The command that continues an interrupted run: the same project and the same ``--set`` options."""
    sets = "".join(f" --set {shlex.quote(option)}" for option in overrides or [])
    return f"segkit train {shlex.quote(str(project_file))}{sets} --resume"
