"""How images meet a model at prediction time: a plain record, so that both the NumPy side
(:mod:`segkit.engine.predict`) and the TensorFlow graph (:mod:`segkit.engine.serving`) can import
it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Prediction:
    """How images meet the model: ``resize`` to its input (as trained on resized images) or
    ``tile`` at full resolution (as trained on crops)."""

    height: int
    width: int
    mode: Literal["resize", "tile"] = "resize"
    overlap: float = 0.5
    batch_size: int = 8
    tta: bool = False
