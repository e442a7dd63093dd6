"""Building a project's model, data, loss, metrics and callbacks from the plugin registry."""

from __future__ import annotations

from typing import Any

from segkit.engine.prediction import Prediction
from segkit.plugins import Registry
from segkit.project import Project
from segkit.specs import (
    CallbackRequest, DatasetRequest, DatasetSource, InstancerRequest, LossRequest, MetricRequest, ModelRequest,
)
from segkit.engine.runtime import build_with


def model_request(project: Project) -> ModelRequest:
    model = project.model
    return ModelRequest(model.image_height, model.image_width, model.image_channels,
                        project.classes.num_classes, model.options)


def build_model(project: Project, registry: Registry) -> Any:
    spec = registry.get("model", project.model.name).spec
    return build_with(str(project.source), "model", spec.build, model_request(project))


def open_dataset(project: Project, registry: Registry) -> DatasetSource:
    """The project's dataset; a fold's (cross-validation) with the fold's splits."""
    request = DatasetRequest(project.dataset.options, project.classes, project.output_dir,
                             project.model.image_channels)
    spec = registry.get("dataset", project.dataset.name).spec
    source = build_with(str(project.source), "dataset", spec.build, request)
    if project.fold_splits is None:
        return source
    from segkit.cv.view import FoldSource

    return FoldSource(source, project.fold_splits)


def build_instancer(project: Project, registry: Registry) -> Any:
    """The project's ``instancer(probabilities, image) -> Instances``, or None without ``[instances]``.

    TensorFlow-free: call it before the run folder is touched, so a rule between the instancer's
    keys (its builder's ValueError, one line on ``instances``) or a missing scikit-image costs nothing.
    """
    if project.instances is None:
        return None
    request = InstancerRequest(project.instances.options, project.classes)
    spec = registry.get("instancer", project.instances.name).spec
    return build_with(str(project.source), "instances", spec.build, request)


def build_loss(project: Project, registry: Registry) -> Any:
    request = LossRequest(project.classes.num_classes, project.loss.options)
    return build_with(str(project.source), "loss", registry.get("loss", project.loss.name).spec.build, request)


def build_metrics(project: Project, registry: Registry) -> list[Any]:
    """The metrics the project names, then every ``always`` metric group, each once."""
    request = MetricRequest(project.classes)
    names = list(project.metrics) + [r.name for r in registry.all("metric")
                                      if getattr(r.spec, "always", False) and r.name not in project.metrics]
    metrics: list[Any] = []
    for name in names:
        metrics.extend(build_with(str(project.source), "metrics.names", registry.get("metric", name).spec.build,
                                  request))
    return metrics


def build_optimizer(project: Project) -> Any:
    import keras

    settings = project.optimizer
    extra: dict[str, Any] = {"clipvalue": settings.clipvalue} if settings.clipvalue else {}
    if settings.ema_momentum is not None:
        extra |= {"use_ema": True, "ema_momentum": settings.ema_momentum}
    if settings.name == "adamw":
        return keras.optimizers.AdamW(settings.learning_rate, weight_decay=settings.weight_decay, **extra)
    return keras.optimizers.Adam(settings.learning_rate, **extra)


def build_plugin_callbacks(project: Project, registry: Registry) -> list[Any]:
    model = project.model
    callbacks = []
    for index, section in enumerate(project.callbacks):
        request = CallbackRequest(section.options, project.classes, model.image_height, model.image_width,
                                  model.image_channels, project.output_dir,
                                  "tile" if project.augment.crop else "resize")
        spec = registry.get("callback", section.name).spec
        callbacks.append(build_with(str(project.source), f"callbacks.{index}", spec.build, request))
    return callbacks


def compile_model(model: Any, project: Project, registry: Registry, jit_compile: bool | str = "auto") -> None:
    """Compile with the project's optimizer, loss and metrics, and create the optimizer's slots.

    Under TensorFlow's default strategy Keras leaves the optimizer to be built inside the first
    traced step; its new variables then make ``tf.function`` trace the whole step a second time
    (2.2 s of a 4.9 s first step for the benchmark FlexUNet, `bench_train.py`). Built here,
    eagerly, the step is traced once.
    """
    model.compile(
        optimizer=build_optimizer(project),
        loss=build_loss(project, registry),
        # weighted: Keras gives sample weights (0 on ignored pixels) only to `weighted_metrics`
        weighted_metrics=build_metrics(project, registry),
        jit_compile=jit_compile,
    )
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def prediction_for(project: Project) -> Prediction:
    """How ``infer``/``eval`` meet the model: tiles at full resolution when it was trained on crops."""
    infer = project.infer
    return Prediction(project.model.image_height, project.model.image_width,
                      "tile" if project.augment.crop else "resize", infer.overlap, infer.batch_size, infer.tta)
