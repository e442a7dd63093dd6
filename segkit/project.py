"""A project file (TOML) -> a validated :class:`Project`, before any TensorFlow is imported."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from segkit import toml_io
from segkit.classes import IGNORE_INDEX, ClassInfo, ClassTable
from segkit.options import Option
from segkit.overrides import apply_overrides
from segkit.plugins import Kind, Registry, get_registry, unknown_name_message
from segkit.project_file import read_document
from segkit.run_folder import INFER_DIR
from segkit.text import visible
from segkit.validation import Context, suggestion, text, validate_table

#: largest model input side; larger images are segmented in windows of the model input size
MAX_INPUT_SIZE = 8192
#: largest batch; more images per step than this fit no accelerator at any useful size
MAX_BATCH = 1024
#: largest number of epochs, and of epochs to wait for an improvement
MAX_EPOCHS = 100_000

PROJECT_KEYS = (
    Option("name", "str", help="name of the project, used for the default output folder"),
    Option("output_dir", "path", None, "run folder (default runs/<name> beside the project file)"),
    Option("seed", "int", 42, "seed of every random choice (weights, shuffling, augmentation)",
           minimum=0, maximum=2**32 - 1),  # NumPy's range, which keras.utils.set_random_seed passes it to
)
MODEL_KEYS = (
    Option("name", "str", help="model plugin, e.g. 'flexunet' (see `segkit plugins`)"),
    Option("image_width", "int", help="model input width in pixels", minimum=8, maximum=MAX_INPUT_SIZE),
    Option("image_height", "int", help="model input height in pixels", minimum=8, maximum=MAX_INPUT_SIZE),
    Option("image_channels", "int", 3, "1 (grayscale) or 3 (RGB)", minimum=1, maximum=3),
)
CLASS_KEYS = (
    Option("name", "str", help="class name"),
    Option("color", "color", help="mask colour [r, g, b]"),
)
MASK_KEYS = (
    Option("ignore_color", "color", None, "mask colour of pixels that count in no loss or metric"),
    Option("tolerance", "float", 60.0, "colour distance beyond which a mask pixel is reported", minimum=0),
)
OPTIMIZER_KEYS = (
    Option("name", "str", "adam", "optimizer", choices=("adam", "adamw")),
    Option("learning_rate", "float", 1e-3, "initial learning rate", minimum=0),
    Option("clipvalue", "float", None, "clip each gradient element to ±clipvalue", minimum=0),
    Option("weight_decay", "float", 0.004, "decoupled weight decay (adamw only)", minimum=0),
    Option("ema_momentum", "float", None, "validate, checkpoint and keep a moving average of the weights "
           "(e.g. 0.99 per step) instead of the last weights", minimum=0, maximum=0.9999),
)
METRICS_KEYS = (Option("names", "str_list", ["dice_coef_multiclass"], "metric plugins to compute"),)
REDUCER_KEYS = (
    Option("factor", "float", 0.4, "multiply the learning rate by this on a plateau", minimum=0, maximum=1),
    Option("patience", "int", 4, "epochs without val_loss improvement before reducing (0 = off)", minimum=0,
           maximum=MAX_EPOCHS),
)
TRAIN_KEYS = (
    Option("epochs", "int", 100, "maximum number of epochs", minimum=1, maximum=MAX_EPOCHS),
    Option("batch_size", "int", 2, "images per step", minimum=1, maximum=MAX_BATCH),
    Option("patience", "int", 10, "early stopping patience in epochs (0 = off)", minimum=0, maximum=MAX_EPOCHS),
    Option("reducer", "table", None, "ReduceLROnPlateau settings", fields=REDUCER_KEYS),
    Option("cache", "str", "none", "keep decoded pairs in memory or on disk after the first epoch",
           choices=("none", "memory", "disk")),
    Option("jit_compile", "str", "auto", "XLA-compile the train step ('auto': Keras's choice, off on CPU; 'on' gives up bit-exact reruns)",
           choices=("auto", "on", "off")),
    Option("precision", "str", "float32", "compute precision; the softmax stays float32",
           choices=("float32", "mixed_float16", "mixed_bfloat16")),
    Option("tensorboard", "bool", False, "write TensorBoard logs into <output_dir>/tensorboard"),
    Option("strategy", "str", "auto", "tf.distribute strategy ('auto': mirrored over several GPUs, else one "
           "device; 'multi_worker' reads the cluster from TF_CONFIG)",
           choices=("auto", "one_device", "mirrored", "multi_worker")),
)
AUGMENT_KEYS = (
    Option("enabled", "bool", False, "augment training pairs online (never valid/test)"),
    Option("flips", "bool", True, "random horizontal and vertical flips"),
    Option("rotate90", "bool", True, "random 90 degree turns (square inputs)"),
    Option("crop", "bool", False, "train on random model-size crops of full-size images instead of resizing"),
    Option("crops_per_image", "int", 1, "windows drawn from each training image per epoch (crop mode)", minimum=1,
           maximum=1024),
    Option("stain_jitter", "float", 0.05, "per-channel scale/shift strength (0 = off)", minimum=0, maximum=0.5),
    Option("rotate", "bool", False, "random turns by any angle (bilinear resampling; edges mirrored where needed)"),
    Option("zoom", "float", 0.0, "random scale by a factor in [1 - zoom, 1 + zoom] (0 = off)", minimum=0, maximum=0.5),
    Option("hed_jitter", "float", 0.0, "scale/shift strength of each stain's optical density, haematoxylin, "
           "eosin, DAB (0 = off; RGB images)", minimum=0, maximum=0.5),
)
INFER_KEYS = (
    Option("images", "path", None, "folder of images to segment (checked when `segkit infer` runs)"),
    Option("output", "path", None, "folder for the masks (default <output_dir>/infer)"),
    Option("overlap", "float", 0.5, "overlap of sliding windows on images larger than the model input",
           minimum=0, maximum=0.9),
    Option("tta", "bool", False, "average the softmax over flipped copies (test-time augmentation)"),
    Option("batch_size", "int", 8, "images or tiles per model call", minimum=1, maximum=MAX_BATCH),
)
PLUGIN_NAME = (Option("name", "str", help="plugin name, see `segkit plugins`"),)
SECTIONS = ("project", "model", "classes", "mask", "optimizer", "loss", "metrics", "dataset", "train",
            "augment", "callbacks", "infer")
REQUIRED_SECTIONS = ("project", "model", "classes")
#: class indices are stored as uint8 and 255 marks ignored pixels
MAX_CLASSES = IGNORE_INDEX


@dataclass(frozen=True)
class PluginSection:
    """A section that names a plugin: the name and the plugin's own validated keys."""

    name: str
    options: Mapping[str, Any]


@dataclass(frozen=True)
class ModelSection(PluginSection):
    image_width: int
    image_height: int
    image_channels: int


@dataclass(frozen=True)
class OptimizerSection:
    name: str
    learning_rate: float
    clipvalue: float | None
    weight_decay: float
    ema_momentum: float | None


@dataclass(frozen=True)
class TrainSection:
    epochs: int
    batch_size: int
    patience: int
    reducer_factor: float
    reducer_patience: int
    cache: str = "none"
    jit_compile: str = "auto"
    precision: str = "float32"
    tensorboard: bool = False
    strategy: str = "auto"


@dataclass(frozen=True)
class AugmentSection:
    enabled: bool
    flips: bool
    rotate90: bool
    crop: bool
    crops_per_image: int
    stain_jitter: float
    rotate: bool = False
    zoom: float = 0.0
    hed_jitter: float = 0.0


@dataclass(frozen=True)
class InferSection:
    images: Path | None
    output: Path
    overlap: float = 0.5
    tta: bool = False
    batch_size: int = 8


@dataclass(frozen=True)
class Project:
    """Everything a command needs from a project file, validated, with every default filled in."""

    source: Path
    name: str
    output_dir: Path
    seed: int
    model: ModelSection
    classes: ClassTable
    optimizer: OptimizerSection
    loss: PluginSection
    metrics: tuple[str, ...]
    dataset: PluginSection
    train: TrainSection
    augment: AugmentSection
    callbacks: tuple[PluginSection, ...]
    infer: InferSection
    #: the validated document, as written to ``project.resolved.toml``
    resolved: Mapping[str, Any]
    #: what loading changed that the user should hear about (keys dropped for a model switch)
    notes: tuple[str, ...] = ()

    def resolved_toml(self) -> str:
        return toml_io.dumps(_plain(self.resolved))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def load_project(path: Path, overrides: Sequence[str] = (), registry: Registry | None = None) -> Project:
    """Read, override and validate a project file. Raises :class:`ProjectError` on any problem."""
    source = path.resolve() if path.exists() else path
    registry = registry or get_registry()
    written = read_document(path)
    document, overridden = apply_overrides(written, overrides, str(path))
    notes = _switch_model(written, document, frozenset(overridden), registry)
    ctx = Context(source=source, overridden=frozenset(overridden))
    return replace(_validate(document, ctx, registry), notes=tuple(notes))


def _switch_model(written: Mapping[str, Any], document: dict[str, Any], overridden: frozenset[str],
                  registry: Registry) -> list[str]:
    """``--set model.name=OTHER``: drop the file's ``[model]`` keys that OTHER does not declare.

    Those keys belong to the file's model (FlexUNet's ``num_layers``); OTHER would refuse them as
    unknown, so no model could be tried from the command line. Keys OTHER declares are kept, and
    keys given with ``--set`` too (an unknown one is still reported).
    """
    before, after = written.get("model"), document.get("model")
    if "model.name" not in overridden or not isinstance(before, Mapping) or not isinstance(after, dict):
        return []
    old, new = before.get("name"), after.get("name")
    if new == old or not isinstance(new, str) or new not in registry.entries["model"]:
        return []  # the same model, or an unknown one that validation names
    declared = {o.name for o in (*MODEL_KEYS, *registry.get("model", new).spec.options)}
    dropped = [key for key in after if key not in declared and f"model.{key}" not in overridden]
    for key in dropped:
        del after[key]
    if not dropped:
        return []
    return [f"model.name = '{new}' given with --set: left out the [model] keys '{new}' does not take: "
            + ", ".join(visible(key) for key in dropped)]


def _section(document: Mapping[str, Any], name: str, ctx: Context) -> Mapping[str, Any]:
    value = document.get(name, {})
    if not isinstance(value, Mapping):
        raise ctx.fail(name, f"expected a table [{name}], got {type(value).__name__}")
    return value


def _plugin_table(
    document: Mapping[str, Any], section: str, core: Sequence[Option], kind: Kind,
    registry: Registry, ctx: Context, default: str | None = None,
) -> dict[str, Any]:
    raw = dict(_section(document, section, ctx))
    if default is not None:
        raw.setdefault("name", default)
    return _plugin_entry(raw, section, core, kind, registry, ctx)


def _plugin_entry(
    raw: Mapping[str, Any], key: str, core: Sequence[Option], kind: Kind, registry: Registry, ctx: Context
) -> dict[str, Any]:
    """Validate a table naming a plugin: the core keys plus the keys that plugin declares."""
    if raw.get("name") is None:
        raise ctx.fail(f"{key}.name", "is required but missing", f"a {kind} plugin name, see `segkit plugins`")
    name = text(raw["name"], f"{key}.name", ctx)  # a control character would reach the listing of names
    if name not in registry.entries[kind]:
        try:
            registry.get(kind, name)
        except Exception as exc:  # a clash or a failed plugin explains itself
            raise ctx.fail(f"{key}.name", str(exc)) from None
    spec_options = registry.get(kind, name).spec.options
    return validate_table(raw, (*core, *spec_options), key, ctx)


def _classes(document: Mapping[str, Any], ctx: Context) -> list[dict[str, Any]]:
    raw = document.get("classes")
    if not isinstance(raw, list) or not all(isinstance(c, Mapping) for c in raw):
        raise ctx.fail("classes", "expected [[classes]] tables", "one [[classes]] table per class, index order")
    rows = [validate_table(c, CLASS_KEYS, f"classes.{i}", ctx) for i, c in enumerate(raw)]
    if len(rows) < 2:
        raise ctx.fail("classes", f"needs at least 2 classes (background first), got {len(rows)}")
    if len(rows) > MAX_CLASSES:
        raise ctx.fail("classes", f"has {len(rows)} classes; at most {MAX_CLASSES} fit a mask of class indices "
                       f"({IGNORE_INDEX} marks ignored pixels)", "merge classes")
    for i, row in enumerate(rows):
        if not row["name"].strip():
            raise ctx.fail(f"classes.{i}.name", f"is empty ({row['name']!r})", "give every class a name")
    _check_unique(rows, "name", lambda name: name.strip().casefold(), ctx)
    _check_unique(rows, "color", tuple, ctx)
    return rows


def _check_unique(rows: Sequence[Mapping[str, Any]], field_name: str, identity: Callable[[Any], Hashable],
                  ctx: Context) -> None:
    """No two classes share ``field_name``; names count as equal ignoring case and outer spaces
    (metric columns and reports would show them as one class)."""
    first: dict[Hashable, int] = {}
    for i, row in enumerate(rows):
        j = first.setdefault(identity(row[field_name]), i)
        if j != i:
            raise ctx.fail(f"classes.{i}.{field_name}", f"same {field_name} as classes.{j} ({rows[j][field_name]!r})",
                           "each class needs its own name and colour")


def _check_ignore_color(ignore: list[int] | None, classes: list[dict[str, Any]], ctx: Context) -> None:
    """A pixel of that colour cannot both be the class and count nowhere; decoding would silently pick the class."""
    for i, row in enumerate(classes):
        if ignore is not None and row["color"] == ignore:
            raise ctx.fail("mask.ignore_color", f"same colour as classes.{i} ({row['name']}, {ignore})",
                           "pick a colour no class uses, or remove ignore_color")


def _check_sections(document: Mapping[str, Any], ctx: Context) -> None:
    for name in document:
        if name not in SECTIONS:
            raise ctx.fail(name, "unknown section", suggestion(name, SECTIONS))
    for name in REQUIRED_SECTIONS:
        if name not in document:
            raise ctx.fail(name, "is required but missing", f"add a [{name}] section" if name != "classes"
                           else "add one [[classes]] table per class")


def _validate(document: Mapping[str, Any], ctx: Context, registry: Registry) -> Project:
    _check_sections(document, ctx)
    resolved: dict[str, Any] = {"project": validate_table(_section(document, "project", ctx), PROJECT_KEYS, "project", ctx)}
    resolved["model"] = _plugin_table(document, "model", MODEL_KEYS, "model", registry, ctx)
    resolved["classes"] = _classes(document, ctx)
    resolved["mask"] = validate_table(_section(document, "mask", ctx), MASK_KEYS, "mask", ctx)
    _check_ignore_color(resolved["mask"]["ignore_color"], resolved["classes"], ctx)
    resolved["optimizer"] = validate_table(_section(document, "optimizer", ctx), OPTIMIZER_KEYS, "optimizer", ctx)
    resolved["loss"] = _plugin_table(document, "loss", PLUGIN_NAME, "loss", registry, ctx, "categorical_crossentropy")
    resolved["metrics"] = validate_table(_section(document, "metrics", ctx), METRICS_KEYS, "metrics", ctx)
    for i, name in enumerate(resolved["metrics"]["names"]):
        if name not in registry.entries["metric"]:
            raise ctx.fail(f"metrics.names.{i}", unknown_name_message("metric", name, registry.names("metric")))
    resolved["dataset"] = _plugin_table(document, "dataset", PLUGIN_NAME, "dataset", registry, ctx, "categorized-masks")
    resolved["train"] = validate_table(_section(document, "train", ctx), TRAIN_KEYS, "train", ctx)
    resolved["augment"] = validate_table(_section(document, "augment", ctx), AUGMENT_KEYS, "augment", ctx)
    if resolved["augment"]["hed_jitter"] > 0 and resolved["model"]["image_channels"] != 3:
        raise ctx.fail("augment.hed_jitter", "needs RGB images (model.image_channels = 3)",
                       "use stain_jitter for grayscale images, or set hed_jitter = 0")
    callbacks = document.get("callbacks", [])
    if not isinstance(callbacks, list) or not all(isinstance(c, Mapping) for c in callbacks):
        raise ctx.fail("callbacks", "expected [[callbacks]] tables")
    resolved["callbacks"] = [
        _plugin_entry(c, f"callbacks.{i}", PLUGIN_NAME, "callback", registry, ctx) for i, c in enumerate(callbacks)
    ]
    resolved["infer"] = validate_table(_section(document, "infer", ctx), INFER_KEYS, "infer", ctx)
    _fill_output_paths(resolved, ctx)
    return _build(resolved, ctx)


def _fill_output_paths(resolved: dict[str, Any], ctx: Context) -> None:
    project = resolved["project"]
    if project["output_dir"] is None:
        project["output_dir"] = (ctx.source.parent / "runs" / project["name"]).resolve()
    if resolved["infer"]["output"] is None:
        resolved["infer"]["output"] = project["output_dir"] / INFER_DIR


def _without(table: Mapping[str, Any], core: Sequence[Option]) -> dict[str, Any]:
    names = {o.name for o in core}
    return {k: v for k, v in table.items() if k not in names}


def _build(resolved: dict[str, Any], ctx: Context) -> Project:
    model, train, mask = resolved["model"], resolved["train"], resolved["mask"]
    table = ClassTable(
        tuple(ClassInfo(c["name"], tuple(c["color"])) for c in resolved["classes"]),  # type: ignore[arg-type]
        ignore_color=tuple(mask["ignore_color"]) if mask["ignore_color"] else None,  # type: ignore[arg-type]
        tolerance=mask["tolerance"],
    )
    reducer = train["reducer"]
    return Project(
        source=ctx.source,
        name=resolved["project"]["name"],
        output_dir=resolved["project"]["output_dir"],
        seed=resolved["project"]["seed"],
        model=ModelSection(model["name"], _without(model, MODEL_KEYS), model["image_width"],
                           model["image_height"], model["image_channels"]),
        classes=table,
        optimizer=OptimizerSection(**resolved["optimizer"]),
        loss=PluginSection(resolved["loss"]["name"], _without(resolved["loss"], PLUGIN_NAME)),
        metrics=tuple(resolved["metrics"]["names"]),
        dataset=PluginSection(resolved["dataset"]["name"], _without(resolved["dataset"], PLUGIN_NAME)),
        train=TrainSection(train["epochs"], train["batch_size"], train["patience"], reducer["factor"],
                           reducer["patience"], train["cache"], train["jit_compile"], train["precision"],
                           train["tensorboard"], train["strategy"]),
        augment=AugmentSection(**resolved["augment"]),
        callbacks=tuple(PluginSection(c["name"], _without(c, PLUGIN_NAME)) for c in resolved["callbacks"]),
        infer=InferSection(**resolved["infer"]),
        resolved=resolved,
    )
