"""Where a run keeps its artefacts, relative to ``[project] output_dir``."""

from __future__ import annotations

BEST_MODEL = "models/best_model.keras"
EVAL_DIR = "eval"
RESOLVED_PROJECT = "project.resolved.toml"
EVALUATION = "evaluation.csv"
EPOCH_CHANGE_DIR = "epoch_change_infer"
CHECKPOINT_DIR = "checkpoints"
#: the resumable state; it names the ``checkpoints/last-NNNN.keras`` it belongs to
STATE = "checkpoints/state.json"
