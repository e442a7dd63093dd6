"""``model.fit``'s job under MultiWorkerMirroredStrategy, where Keras 3's own ``fit`` fails.

Keras 3 hands per-replica values to its TensorFlow trainer under this strategy and stops
(keras-team/keras#20585, tensorflow/tensorflow#72388). This loop runs the same loss, metrics and
callbacks through ``strategy.run``: gradients are all-reduced by the optimizer, metric variables
are summed across workers when read, so every worker sees the same logs and the callbacks
(reducer, early stopping) take the same decisions everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf


class WorkerLoop:
    """Trains ``model`` (built and compiled in ``strategy.scope()``) on distributed datasets."""

    def __init__(self, strategy: Any, model: Any, loss: Any, train_metrics: Sequence[Any],
                 valid_metrics: Sequence[Any]) -> None:
        self.strategy = strategy
        self.model = model
        self.loss = loss
        self.train_metrics = list(train_metrics)
        self.valid_metrics = list(valid_metrics)
        with strategy.scope():
            self.train_loss = keras.metrics.Mean(name="loss")
            self.valid_loss = keras.metrics.Mean(name="loss")
        self._train_step = tf.function(self._distributed(self._train))
        self._valid_step = tf.function(self._distributed(self._valid))

    def _distributed(self, step: Any) -> Any:
        def run(batch: Any) -> None:
            self.strategy.run(step, args=batch)

        return run

    def _weighted_loss(self, y: Any, prediction: Any, weights: Any) -> Any:
        # Keras scales a reduced loss by 1/replicas inside a replica context: the sum over
        # replicas is then the mean, as the gradients need. The logged value is unscaled.
        return self.loss(y, prediction, sample_weight=weights)

    def _train(self, x: Any, y: Any, weights: Any = None) -> None:
        with tf.GradientTape() as tape:
            prediction = self.model(x, training=True)
            loss = self._weighted_loss(y, prediction, weights)
        gradients = tape.gradient(loss, self.model.trainable_variables)
        self.model.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
        self._update(self.train_loss, self.train_metrics, loss, y, prediction, weights)

    def _valid(self, x: Any, y: Any, weights: Any = None) -> None:
        prediction = self.model(x, training=False)
        loss = self._weighted_loss(y, prediction, weights)
        self._update(self.valid_loss, self.valid_metrics, loss, y, prediction, weights)

    def _update(self, mean: Any, metrics: list[Any], loss: Any, y: Any, prediction: Any, weights: Any) -> None:
        mean.update_state(loss * self.strategy.num_replicas_in_sync)
        for metric in metrics:
            metric.update_state(y, prediction, sample_weight=weights)

    @staticmethod
    def _read(mean: Any, metrics: list[Any], prefix: str = "") -> dict[str, float]:
        logs = {f"{prefix}loss": float(mean.result())}
        logs.update({f"{prefix}{m.name}": float(m.result()) for m in metrics})
        return logs

    def _reset(self) -> None:
        for metric in [self.train_loss, self.valid_loss, *self.train_metrics, *self.valid_metrics]:
            metric.reset_state()

    def fit(self, train_data: Any, valid_data: Any, *, epochs: int, initial_epoch: int, steps_per_epoch: int,
            callbacks: Sequence[Any]) -> dict[str, list[float]]:
        """Run epochs ``initial_epoch..epochs-1``; returns the history like ``fit(...).history``."""
        callback_list = keras.callbacks.CallbackList(list(callbacks), add_history=True, model=self.model,
                                                     epochs=epochs, steps=steps_per_epoch, verbose=0)
        # the sources are Python readers, not files: shard the batches, not the file list
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train_data, valid_data = train_data.with_options(options), valid_data.with_options(options)
        train_iterator = iter(self.strategy.experimental_distribute_dataset(train_data))
        callback_list.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            self._reset()
            callback_list.on_epoch_begin(epoch)
            for step in range(steps_per_epoch):
                callback_list.on_train_batch_begin(step)
                self._train_step(next(train_iterator))
                callback_list.on_train_batch_end(step, {"loss": float(self.train_loss.result())})
            callback_list.on_test_begin()  # as fit's evaluate does: SwapAveragedWeights validates the averages
            for batch in self.strategy.experimental_distribute_dataset(valid_data):
                self._valid_step(batch)
            logs = {**self._read(self.train_loss, self.train_metrics),
                    **self._read(self.valid_loss, self.valid_metrics, "val_")}
            callback_list.on_test_end(logs)
            callback_list.on_epoch_end(epoch, logs)
            if self.model.stop_training:
                break
        callback_list.on_train_end()
        return self.model.history.history
