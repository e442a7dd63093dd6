"""The records plugin hooks return, and the requests their builders receive.

Every record is frozen and carries a ``name`` (what a project file uses), a one-line
``description`` (what ``segkit plugins`` shows), a ``build`` callable and the ``options`` its
TOML table accepts. Building is deferred: registering a record imports no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from segkit.classes import ClassTable
from segkit.options import Option

if TYPE_CHECKING:
    from segkit.data.folders import SplitFolders
    from segkit.data.pairing import FileKind, Pair


@dataclass(frozen=True)
class ModelRequest:
    """What a model builder gets: the input geometry, the classes and its own validated keys."""

    image_height: int
    image_width: int
    image_channels: int
    num_classes: int
    options: Mapping[str, Any]


@dataclass(frozen=True)
class ModelFootprint:
    """What a model costs in memory, worked out from its options without building it.

    Both are lower bounds: segkit refuses a run only when even these cannot fit in memory.
    """

    #: weights the model creates (each also gets a gradient and the optimizer's slots in training)
    parameters: int
    #: values the layer outputs of one image hold (what training keeps for the backward pass)
    activations_per_image: int
    #: the model's own ``[model]`` keys that set ``parameters`` (named when it cannot fit)
    parameter_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetRequest:
    """What a dataset builder gets: its validated keys, the class table and the run folder."""

    options: Mapping[str, Any]
    classes: ClassTable
    output_dir: Path
    image_channels: int


class DatasetSource(Protocol):
    """What a dataset builder returns: file pairs per split and a way to decode one pair.

    Four more methods are optional; the core calls each only on a source that has it, found by
    ``isinstance`` against the protocols below (``segkit.data.folders.FolderDataset`` has all
    four, so a source built on it gets them for free):

    - ``check(split)`` (:class:`CheckedSource`): read every file's header before training
      touches the run folder, so a bad file fails in a second, named;
    - ``notes()`` (:class:`NotedSource`): lines shown after training (e.g. mask pixels that
      matched no class colour);
    - ``folders()`` (:class:`FolderSource`): the ``images``/``masks`` folders per split, which
      ``segkit stats`` reads; a source without it cannot be given to ``segkit stats`` as a project;
    - ``instances(pair)`` (:class:`InstanceSource`): the nuclei's instance ids, which ``segkit eval``
      scores objects against (without it, the connected components of each class);
    - ``label_kind()`` and ``label_counts(image, labels)`` (:class:`CountedSource`, with ``folders()``):
      for labels that are no colour masks (GeoJSON, say), which files of the masks folder are labels
      and what each holds, so ``segkit stats`` can count them.

    A source whose ``load`` may give :data:`segkit.classes.IGNORE_INDEX` pixels although the project
    sets no ``[mask] ignore_color`` says so with ``partial_labels() -> True``
    (:class:`PartialSource`), so training and evaluation leave those pixels out. A source that
    knows which images come from one patient or core says so with ``group(pair) -> str``
    (:class:`GroupedSource`), which cross-validation's ``[cv] group_by = "dataset"`` uses.
    """

    def pairs(self, split: str) -> list[Pair]:
        """Image/mask pairs of ``split``, paired by stem."""

    def load(self, pair: Pair) -> tuple[Any, Any]:
        """``(image (H, W, C) uint8, mask (H, W) uint8 class indices)`` of one pair."""


@runtime_checkable
class CheckedSource(DatasetSource, Protocol):
    """A source that can check a split's files without decoding them."""

    def check(self, split: str) -> list[Pair]:
        """The pairs of ``split``, each file's header read; a DataError naming the first bad file."""


@runtime_checkable
class NotedSource(DatasetSource, Protocol):
    """A source with something to say once the data has been read."""

    def notes(self) -> list[str]:
        """One line per thing worth telling the user, ``[]`` when there is none."""


@runtime_checkable
class FolderSource(DatasetSource, Protocol):
    """A source made of ``images``/``masks`` folders, one pair of folders per split."""

    def folders(self) -> Mapping[str, SplitFolders]:
        """The folders behind each split."""


@runtime_checkable
class InstanceSource(DatasetSource, Protocol):
    """A source that knows which nucleus each pixel belongs to, not only its class.

    Without it (or where it returns ``None``) the objects of a class mask are its connected
    components per class, so nuclei of one class that touch count as one object.
    """

    def instances(self, pair: Pair) -> Any:
        """Instance ids of ``pair``: ``(H, W)`` int32, 0 off objects, or ``None`` when it has none."""


@runtime_checkable
class GroupedSource(DatasetSource, Protocol):
    """A source that knows which images belong together (a patient, a tissue core): cross-validation
    with ``[cv] group_by = "dataset"`` never puts two images of one group into different folds."""

    def group(self, pair: Pair) -> str:
        """The group of ``pair`` (a non-empty name); images of one group are one tissue, one patient."""


@dataclass(frozen=True)
class LabelCounts:
    """What one pair's labels hold, as ``segkit stats`` reports it."""

    #: ``(width, height)`` the labels were counted at
    size: tuple[int, int]
    #: ``(256,)`` int64 pixels per class index, :data:`segkit.classes.IGNORE_INDEX` included
    pixels: Any
    #: ``(num_classes,)`` int64 objects per class index
    objects: Any
    #: label names that match no class, with how many objects carry each
    unknown: Mapping[str, int]
    #: labels that could not be used at all (no geometry, invalid outline, ...)
    bad: int = 0


@runtime_checkable
class CountedSource(FolderSource, Protocol):
    """A folder source whose label files are not colour masks: it counts them for ``segkit stats``."""

    def label_kind(self) -> FileKind:
        """Which entries of a split's masks folder are label files, and the stem each pairs by."""

    def label_counts(self, image: Path, labels: Path) -> LabelCounts:
        """What ``labels`` (the partner of ``image``) holds; a DataError when it cannot be read."""


@runtime_checkable
class PartialSource(DatasetSource, Protocol):
    """A source that may label only part of each image, the rest :data:`segkit.classes.IGNORE_INDEX`."""

    def partial_labels(self) -> bool:
        """Whether its masks may hold ignored pixels."""


@dataclass(frozen=True)
class LossRequest:
    """What a loss builder gets."""

    num_classes: int
    options: Mapping[str, Any]


@dataclass(frozen=True)
class MetricRequest:
    """What a metric builder gets: the class table drives per-class names."""

    classes: ClassTable


@dataclass(frozen=True)
class CallbackRequest:
    """What a callback builder gets: its keys, the classes, the model input size and the run folder."""

    options: Mapping[str, Any]
    classes: ClassTable
    image_height: int
    image_width: int
    image_channels: int
    output_dir: Path
    #: "resize" when the model was trained on resized images, "tile" when on full-resolution crops
    inference: str = "resize"


@dataclass(frozen=True)
class PreparerRequest:
    """What a preparer (``segkit prepare``) gets: source folder, output folder and its options."""

    source: Path
    output: Path
    options: Mapping[str, Any]


@dataclass(frozen=True)
class InstancerRequest:
    """What an instancer builder gets: its validated ``[instances]`` keys and the class table."""

    options: Mapping[str, Any]
    classes: ClassTable


@dataclass(frozen=True)
class Instances:
    """The objects (nuclei) found in one image.

    ``labels`` is ``(H, W)`` int32: 0 where there is no object, ``1..N`` for the N objects.
    ``classes[i]`` is the class index (never 0, the background) of object ``i + 1`` and
    ``probabilities[i]`` the mean softmax of that class over its pixels.
    """

    labels: Any
    classes: Any
    probabilities: Any

    @property
    def count(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class _Spec:
    name: str
    description: str
    build: Callable[..., Any]
    options: tuple[Option, ...] = field(default=())


@dataclass(frozen=True)
class ModelSpec(_Spec):
    """A model: ``build(ModelRequest) -> keras.Model`` whose output is a per-pixel softmax.

    ``check(ModelRequest) -> None``, optional, applies the model's own rules (e.g. "sizes must
    divide by 2**(num_layers-1)") without TensorFlow: ``segkit train`` calls it before anything
    is written, and a ``ValueError`` from it is one line on ``[model]``, exactly like one from
    ``build``. A rule left to ``build`` alone is found only after TensorFlow has loaded.
    """

    check: Callable[[ModelRequest], None] | None = None
    #: ``footprint(ModelRequest) -> ModelFootprint``, optional and TensorFlow-free like ``check``:
    #: lets segkit refuse a model that cannot fit in memory before TensorFlow starts
    footprint: Callable[[ModelRequest], ModelFootprint] | None = None


@dataclass(frozen=True)
class DatasetSpec(_Spec):
    """A dataset: ``build(DatasetRequest) -> DatasetSource``."""


@dataclass(frozen=True)
class LossSpec(_Spec):
    """A loss: ``build(LossRequest) -> keras loss`` taking one-hot ``y_true`` and softmax ``y_pred``."""


@dataclass(frozen=True)
class MetricSpec(_Spec):
    """A metric group: ``build(MetricRequest) -> list[keras.metrics.Metric]``.

    ``always`` metrics are computed in every run whether or not the project names them (the
    honest per-class figures); the others only when listed in ``[metrics] names``.
    """

    always: bool = False


@dataclass(frozen=True)
class CallbackSpec(_Spec):
    """A training callback: ``build(CallbackRequest) -> keras.callbacks.Callback``."""


@dataclass(frozen=True)
class PreparerSpec(_Spec):
    """A converter from a published layout to segkit's: ``build(PreparerRequest) -> PrepareReport``."""


@dataclass(frozen=True)
class InstancerSpec(_Spec):
    """Turns a model's output into objects: ``build(InstancerRequest) -> instancer``, where
    ``instancer(probabilities, image) -> Instances`` takes one image's softmax ``(H, W, K)``
    float32 and the image itself ``(H, W, C)`` uint8 (for methods that look at the stain)."""


@dataclass(frozen=True)
class PrepareReport:
    """What a preparer did: files written per split and the project file it wrote (if any)."""

    counts: Mapping[str, int]
    project_file: Path | None = None
    notes: tuple[str, ...] = ()



@runtime_checkable
class Slide(Protocol):
    """An open whole-slide image: a pyramid of levels, read a region at a time.

    Level 0 is the full resolution; ``level_dimensions[i]`` is level ``i``'s ``(width, height)``
    and ``level_downsamples[i]`` how many level-0 pixels one of its pixels spans (as OpenSlide
    reports them). ``microns_per_pixel`` is ``(x, y)`` from the file's metadata, ``None`` when the
    file does not say (never guessed). A slide is a context manager that closes it.
    """

    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    microns_per_pixel: tuple[float, float] | None

    def read_region(self, level: int, x: int, y: int, width: int, height: int) -> Any:
        """``(height, width, 3)`` uint8 RGB of ``level``, its top-left corner at level-0 pixel ``(x, y)``
        (OpenSlide's convention); pixels beyond the slide, and transparent ones, are white."""

    def close(self) -> None:
        """Release the file; reading afterwards is an error."""

    def __enter__(self) -> Slide: ...

    def __exit__(self, *exc_info: object) -> None: ...


@dataclass(frozen=True)
class SlideReaderSpec(_Spec):
    """A slide reader: ``build(path) -> Slide`` opens one file (slide readers take no TOML keys).

    ``build`` raises ``ValueError(reason)`` for a file it cannot open (not its format, a broken
    header) and a :class:`~segkit.errors.PluginError` when a library it needs is missing. The
    :class:`Slide` it returns may assume ``read_region`` gets a valid level and a region inside
    that level: :func:`segkit.slides.open_slide.open_slide` checks both, clips the region, pads
    it with white and applies a pixel-size override; a tile that fails to decode is a
    :class:`~segkit.errors.DataError` (``segkit.plugin.undecodable_region`` words it).

    ``can_read(path) -> bool``, optional, is a cheap sniff (suffix, magic bytes) choosing which
    readers are tried for a file, lowest ``order`` first (ties by name); without it a reader is
    tried on every file.
    """

    can_read: Callable[[Path], bool] | None = None
    order: int = 100


Spec = ModelSpec | DatasetSpec | LossSpec | MetricSpec | CallbackSpec | PreparerSpec | InstancerSpec | SlideReaderSpec
