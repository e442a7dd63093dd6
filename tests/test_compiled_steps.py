"""``[train] jit_compile``: 'on' really compiles with XLA (op determinism would silently turn it
off), 'auto' and 'off' keep the deterministic kernels that make reruns bit-exact."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize(("choice", "xla"), [("on", True), ("auto", False), ("off", False)])
def test_jit_choice_reaches_keras(choice: str, xla: bool) -> None:
    import keras
    from tensorflow.python.framework.config import is_op_determinism_enabled

    from segkit.engine.runtime import deterministic_for, jit_setting, seed_everything
    from segkit_flexunet.flexunet import build_flexunet

    rng = np.random.default_rng(0)
    x = rng.random((4, 16, 16, 3), dtype=np.float32)
    y = np.eye(2, dtype=np.float32)[(x[..., 0] > 0.5).astype(int)]
    try:
        seed_everything(1, deterministic_for(choice))  # what segkit train does, in this order
        model = build_flexunet(image_height=16, image_width=16, image_channels=3, num_classes=2, base_filters=4,
                               base_kernels=3, num_layers=2, dropout_rate=0.0)
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.CategoricalCrossentropy(),
                      jit_compile=jit_setting(choice))
        losses = model.fit(x, y, batch_size=2, epochs=2, verbose=0).history["loss"]
        assert model.jit_compile is xla
        assert is_op_determinism_enabled() is (not xla)
        assert np.isfinite(losses).all()
    finally:
        seed_everything(0)


def test_first_train_step_creates_no_variable_while_tracing(tiny_project) -> None:  # type: ignore[no-untyped-def]
    """A variable created inside the traced step makes tf.function trace the whole step again:
    compile_model must leave nothing (Adam's slots, metric state) to be built there."""
    import tensorflow as tf

    from segkit.engine import components
    from segkit.plugins import get_registry
    from segkit.project import load_project

    project, registry = load_project(tiny_project), get_registry()
    model = components.build_model(project, registry)
    components.compile_model(model, project, registry)
    created_while_tracing: list[str] = []

    def creator(next_creator, **kwargs):  # type: ignore[no-untyped-def]
        if not tf.executing_eagerly():
            created_while_tracing.append(str(kwargs.get("name")))
        return next_creator(**kwargs)

    rng = np.random.default_rng(0)
    x = rng.random((4, 64, 64, 3), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, (4, 64, 64))]
    slots_before = len(model.optimizer.variables)
    with tf.variable_creator_scope(creator):
        model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert created_while_tracing == []
    assert slots_before == len(model.optimizer.variables) > 2 * len(model.trainable_variables)
