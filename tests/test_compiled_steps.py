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
