"""Hook specifications: what a segkit plugin may implement.

A plugin is an importable module registered under the ``segkit`` entry-point group, e.g. in its
``pyproject.toml``::

    [project.entry-points.segkit]
    my_models = "my_package.segkit_plugin"

and that module implements any of the hooks below with ``@hookimpl`` (``from segkit.plugin import
hookimpl``). Each hook returns an iterable of named records, imported from :mod:`segkit.plugin`
like everything else a plugin uses; segkit merges the records of every plugin by
kind and refuses a name two plugins both register, naming both. Hooks only *describe* builders:
implementing them must not import TensorFlow, which is imported when a builder is called.
"""

from __future__ import annotations

from collections.abc import Iterable

import pluggy

from segkit.specs import (
    CallbackSpec,
    DatasetSpec,
    InstancerSpec,
    LossSpec,
    MetricSpec,
    ModelSpec,
    PreparerSpec,
    SlideReaderSpec,
)

hookspec = pluggy.HookspecMarker("segkit")


@hookspec
def segkit_models() -> Iterable[ModelSpec]:
    """Register segmentation models.

    Called once, when the plugin registry is first needed (``segkit plugins``, or loading a
    project to validate ``[model] name`` and the model's own keys).

    :return: :class:`~segkit.specs.ModelSpec` records. ``build`` receives a
        :class:`~segkit.specs.ModelRequest` and returns an uncompiled ``keras.Model`` mapping
        ``(B, H, W, C)`` float32 images in ``[0, 1]`` to ``(B, H, W, num_classes)`` softmax.
        ``options`` declares the keys the model reads from ``[model]``.

    Example::

        @hookimpl
        def segkit_models():
            return [ModelSpec("tiny-fcn", "two convolutions and a softmax", build_tiny_fcn,
                              options=(Option("filters", "int", 8, "width", minimum=1),))]
    """


@hookspec
def segkit_datasets() -> Iterable[DatasetSpec]:
    """Register dataset readers.

    Called once when the registry is built. ``build`` receives a
    :class:`~segkit.specs.DatasetRequest` when a command needs data and returns a
    :class:`~segkit.specs.DatasetSource`: pairs per split (paired by file stem) and a decoder
    from a pair to ``(image uint8 (H, W, C), mask uint8 (H, W) class indices)``. Masks use
    ``segkit.plugin.IGNORE_INDEX`` for pixels that count nowhere.

    :return: :class:`~segkit.specs.DatasetSpec` records; ``options`` declares ``[dataset]`` keys.

    Example::

        @hookimpl
        def segkit_datasets():
            return [DatasetSpec("my-folders", "my lab's layout", open_my_folders,
                                options=(Option("root", "dir", help="data root"),))]
    """


@hookspec
def segkit_losses() -> Iterable[LossSpec]:
    """Register losses, looked up by ``[loss] name``.

    Called once when the registry is built. ``build`` receives a
    :class:`~segkit.specs.LossRequest` at compile time and returns a Keras loss (a
    ``keras.losses.Loss`` or a function ``(y_true, y_pred) -> per-pixel loss``); ``y_true`` is
    one-hot, and ignored pixels arrive with a zero sample weight.

    :return: :class:`~segkit.specs.LossSpec` records; ``options`` declares ``[loss]`` keys.

    Example::

        @hookimpl
        def segkit_losses():
            return [LossSpec("focal", "focal loss", lambda req: keras.losses.CategoricalFocalCrossentropy())]
    """


@hookspec
def segkit_metrics() -> Iterable[MetricSpec]:
    """Register metrics, looked up by the entries of ``[metrics] names``.

    Called once when the registry is built. ``build`` receives a
    :class:`~segkit.specs.MetricRequest` (with the class table, so per-class metrics can be
    named after the classes) and returns a list of ``keras.metrics.Metric``. A spec with
    ``always=True`` is compiled into every run, whether or not the project lists it.

    :return: :class:`~segkit.specs.MetricSpec` records.

    Example::

        @hookimpl
        def segkit_metrics():
            return [MetricSpec("pixel_accuracy", "share of pixels right",
                               lambda req: [keras.metrics.CategoricalAccuracy(name="pixel_accuracy")])]
    """


@hookspec
def segkit_callbacks() -> Iterable[CallbackSpec]:
    """Register training callbacks, used by ``[[callbacks]] name``.

    Called once when the registry is built. ``build`` receives a
    :class:`~segkit.specs.CallbackRequest` (its ``[[callbacks]]`` keys, the class table, the
    model input size, the run folder) when training starts and returns a
    ``keras.callbacks.Callback``. Write files only under ``request.output_dir``.

    :return: :class:`~segkit.specs.CallbackSpec` records.

    Example::

        @hookimpl
        def segkit_callbacks():
            return [CallbackSpec("lr-logger", "prints the learning rate", build_lr_logger)]
    """


@hookspec
def segkit_preparers() -> Iterable[PreparerSpec]:
    """Register converters from published dataset layouts, run by ``segkit prepare NAME SRC --out DIR``.

    Called once when the registry is built. ``build`` receives a
    :class:`~segkit.specs.PreparerRequest` and writes ``DIR/{train,valid,test}/{images,masks}``,
    returning a :class:`~segkit.specs.PrepareReport`. ``options`` become ``--option key=value``.

    :return: :class:`~segkit.specs.PreparerSpec` records.

    Example::

        @hookimpl
        def segkit_preparers():
            return [PreparerSpec("my-archive", "converts our scanner's export", convert_archive)]
    """


@hookspec
def segkit_instancers() -> Iterable[InstancerSpec]:
    """Register instancers: methods that turn a model's softmax into objects (nuclei), named by ``[instances] name``.

    Called once when the registry is built. ``build`` receives a
    :class:`~segkit.specs.InstancerRequest` (its validated ``[instances]`` keys and the class table)
    when a command needs objects, and returns a callable ``instancer(probabilities, image) ->``
    :class:`~segkit.specs.Instances`: ``probabilities`` is one image's softmax ``(H, W, K)`` float32,
    ``image`` the image itself ``(H, W, C)`` uint8. The result holds an ``(H, W)`` int32 label image
    (0 off objects, ``1..N``), each object's foreground class and its mean class probability;
    ``segkit.plugin.instances_from_labels`` makes it from a label image. A ``ValueError`` from
    ``build`` (a rule between keys) is one line on ``[instances]``.

    :return: :class:`~segkit.specs.InstancerSpec` records; ``options`` declares ``[instances]`` keys.

    Example::

        @hookimpl
        def segkit_instancers():
            return [InstancerSpec("blobs", "connected components of the argmax",
                                  lambda req: lambda probs, image: instances_from_labels(
                                      skimage.measure.label(probs.argmax(-1) > 0), probs))]
    """


@hookspec
def segkit_slide_readers() -> Iterable[SlideReaderSpec]:
    """Register whole-slide image readers (SVS, NDPI, MRXS, OME-TIFF, ...), chosen per file.

    Called once when the registry is built. ``build`` receives the slide's ``Path`` when a command
    opens a slide and returns a :class:`~segkit.specs.Slide`: ``level_dimensions`` (``(width,
    height)`` per level, level 0 full resolution), ``level_downsamples``, ``microns_per_pixel``
    (``(x, y)`` from the file's metadata or ``None``, never guessed), ``read_region(level, x, y,
    width, height)`` (uint8 RGB ``(height, width, 3)``, ``x, y`` in level-0 pixels as in OpenSlide),
    ``close()``, and the context manager. ``build`` raises ``ValueError(reason)`` for a file it
    cannot open and ``PluginError`` for a library that is missing.

    ``can_read(path) -> bool`` (optional, cheap: a suffix or magic bytes) and ``order`` (lowest
    first) decide which readers ``segkit.slides.open_slide.open_slide`` tries on a file when no
    reader is named; the first that opens it is used. Slide readers take no TOML keys.

    :return: :class:`~segkit.specs.SlideReaderSpec` records.

    Example::

        @hookimpl
        def segkit_slide_readers():
            return [SlideReaderSpec("czi", "Zeiss CZI via pylibCZIrw", open_czi,
                                    can_read=lambda path: path.suffix.lower() == ".czi", order=40)]
    """
