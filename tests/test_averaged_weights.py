"""``[optimizer] ema_momentum``: the moving average of the weights is validated, saved and evaluated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segkit.engine.train import train
from segkit.plugins import get_registry
from segkit.project import load_project
from segkit.run_folder import BEST_MODEL
from tiny_data import best_val_loss, saved_model_loss_on_valid, write_tiny_project


def _averaging_model(momentum: float) -> Any:
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(use_ema=True, ema_momentum=momentum), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _values(variables: list[Any]) -> list[float]:
    return sorted({float(v) for variable in variables for v in np.asarray(variable).ravel()})


@pytest.mark.parametrize("resumed", [True, False])
def test_a_resumed_model_swaps_the_averages_out_before_its_first_epoch(resumed: bool) -> None:
    from segkit.engine.averaged_weights import SwapAveragedWeights

    model = _averaging_model(0.9)
    averages = model.optimizer._model_variables_moving_average
    for variable, average in zip(model.trainable_variables, averages):  # what a checkpoint holds
        variable.assign(np.full(variable.shape, 2.0, np.float32))
        average.assign(np.full(average.shape, 1.0, np.float32))
    callback = SwapAveragedWeights(resumed=resumed)
    callback.set_model(model)
    callback.set_params({"epochs": 5})
    callback.on_epoch_begin(3)
    assert _values(model.trainable_variables) == ([1.0] if resumed else [2.0])
    callback.on_epoch_end(3)  # the epoch ends with the averages in the model, for the checkpoints
    assert _values(model.trainable_variables) == ([2.0] if resumed else [1.0])


def test_the_saved_model_is_the_averaged_one_validated(tmp_path: Path) -> None:
    import keras

    registry, saved = get_registry(), []
    for momentum in (0.8, None):
        path = write_tiny_project(tmp_path / str(momentum), epochs=3, ema_momentum=momentum)
        project = load_project(path)
        train(project, registry, None, progress=False)
        # evaluated on the validation images, the saved model scores the best val_loss of training
        loss = saved_model_loss_on_valid(path, project.output_dir)
        assert loss == pytest.approx(best_val_loss(project.output_dir), rel=1e-4), momentum
        model = keras.saving.load_model(project.output_dir / BEST_MODEL, compile=False)
        saved.append(np.concatenate([np.ravel(w) for w in model.get_weights()]))
    assert np.abs(saved[0] - saved[1]).max() > 1e-3
