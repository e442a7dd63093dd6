"""A project file (TOML) -> a validated :class:`Project`, before any TensorFlow is imported."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from segkit import sections, toml_io
from segkit.classes import IGNORE_INDEX, ClassInfo, ClassTable
from segkit.errors import PluginError
from segkit.options import Option, build_record, options_of, setting
from segkit.overrides import apply_overrides
from segkit.plugins import Kind, Registry, get_registry, unknown_name_message
from segkit.project_file import read_document
from segkit.run_folder import INFER_DIR
from segkit.sections import PLUGIN_NAME, ModelSection, PluginSection
from segkit.text import visible
from segkit.validation import Context, suggestion, text, validate_table

SECTIONS = ("project", "model", "classes", "mask", "optimizer", "loss", "metrics", "dataset", "train",
            "augment", "callbacks", "infer", "instances", "slides", "cv")
REQUIRED_SECTIONS = ("project", "model", "classes")
#: class indices are stored as uint8 and 255 marks ignored pixels
MAX_CLASSES = IGNORE_INDEX


@dataclass(frozen=True, kw_only=True)
class Project:
    """Everything a command needs from a project file, validated, with every default filled in.

    Its settings are the ``[project]`` keys; the other sections are records of their own.
    """

    source: Path
    name: str = setting("str", help="name of the project, used for the default output folder")
    #: filled in as runs/<name> beside the project file when not given
    output_dir: Path = setting("path", None, "run folder (default runs/<name> beside the project file)")
    # NumPy's range, which keras.utils.set_random_seed passes it to
    seed: int = setting("int", 42, "seed of every random choice (weights, shuffling, augmentation)",
                        minimum=0, maximum=2**32 - 1)
    model: ModelSection
    classes: ClassTable
    optimizer: sections.OptimizerSection
    loss: PluginSection
    metrics: tuple[str, ...]
    dataset: PluginSection
    train: sections.TrainSection
    augment: sections.AugmentSection
    callbacks: tuple[PluginSection, ...]
    infer: sections.InferSection
    #: the instancer that turns predictions into nuclei; None when the file has no ``[instances]`` table
    instances: sections.InstancesSection | None
    slides: sections.SlidesSection
    cv: sections.CvSection
    #: the validated document, as written to ``project.resolved.toml``
    resolved: Mapping[str, Any]
    #: what loading changed that the user should hear about (keys dropped for a model switch)
    notes: tuple[str, ...] = ()
    #: split -> image stems when this project is one fold of a cross-validation (``segkit.cv.view``);
    #: None for the project as its file describes it
    fold_splits: Mapping[str, tuple[str, ...]] | None = None

    def resolved_toml(self) -> str:
        return toml_io.dumps(_plain(self.resolved))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


PROJECT_KEYS = options_of(Project)


def load_project(path: Path, overrides: Sequence[str] = (), registry: Registry | None = None) -> Project:
    """Read, override and validate a project file. Raises :class:`ProjectError` on any problem."""
    source = path.resolve() if path.exists() else path
    registry = registry or get_registry()
    written = read_document(path)
    document, overridden = apply_overrides(written, overrides, str(path))
    notes = _switch_model(written, document, frozenset(overridden), registry)
    ctx = Context(source=source, overridden=frozenset(overridden))
    return replace(_validate(document, ctx, registry), notes=tuple(notes))


def project_classes(path: Path) -> ClassTable:
    """The class table of a project file: its ``[[classes]]`` and ``[mask]`` validated, nothing else
    (a converter that decodes masks with them needs no model or dataset of that project)."""
    source = path.resolve() if path.exists() else path
    document = read_document(path)
    ctx = Context(source=source)
    if "classes" not in document:
        raise ctx.fail("classes", "is required but missing", "add one [[classes]] table per class")
    classes = _classes(document, ctx)
    mask = _table(document, "mask", sections.MASK_KEYS, ctx)
    _check_ignore_color(mask["ignore_color"], classes, ctx)
    return _class_table(classes, mask)


def _class_table(classes: Sequence[Mapping[str, Any]], mask: Mapping[str, Any]) -> ClassTable:
    return ClassTable(
        tuple(ClassInfo(c["name"], tuple(c["color"])) for c in classes),
        ignore_color=tuple(mask["ignore_color"]) if mask["ignore_color"] else None,
        tolerance=mask["tolerance"],
    )


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
    declared = {o.name for o in (*sections.MODEL_KEYS, *registry.get("model", new).spec.options)}
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


def _table(document: Mapping[str, Any], name: str, keys: Sequence[Option], ctx: Context) -> dict[str, Any]:
    return validate_table(_section(document, name, ctx), keys, name, ctx)


def _plugin_table(
    document: Mapping[str, Any], section: str, core: Sequence[Option], kind: Kind,
    registry: Registry, ctx: Context,
) -> dict[str, Any]:
    raw = dict(_section(document, section, ctx))
    name = next(option for option in core if option.name == "name")
    if not name.required:  # a built-in plugin serves a section that names none
        raw.setdefault("name", name.default)
    return _plugin_entry(raw, section, core, kind, registry, ctx)


def _plugin_entry(
    raw: Mapping[str, Any], key: str, core: Sequence[Option], kind: Kind, registry: Registry, ctx: Context
) -> dict[str, Any]:
    """Validate a table naming a plugin: the core keys plus the keys that plugin declares."""
    if raw.get("name") is None:
        article = "an" if kind[0] in "aeiou" else "a"
        raise ctx.fail(f"{key}.name", "is required but missing", f"{article} {kind} plugin name, see `segkit plugins`")
    name = text(raw["name"], f"{key}.name", ctx)  # a control character would reach the listing of names
    if name not in registry.entries[kind]:
        try:
            registry.get(kind, name)
        except PluginError as exc:  # a clash or a failed plugin explains itself
            raise ctx.fail(f"{key}.name", str(exc)) from None
    spec_options = registry.get(kind, name).spec.options
    return validate_table(raw, (*core, *spec_options), key, ctx)


def _classes(document: Mapping[str, Any], ctx: Context) -> list[dict[str, Any]]:
    raw = document.get("classes")
    if not isinstance(raw, list) or not all(isinstance(c, Mapping) for c in raw):
        raise ctx.fail("classes", "expected [[classes]] tables", "one [[classes]] table per class, index order")
    rows = [validate_table(c, sections.CLASS_KEYS, f"classes.{i}", ctx) for i, c in enumerate(raw)]
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
    resolved: dict[str, Any] = {"project": _table(document, "project", PROJECT_KEYS, ctx)}
    resolved["model"] = _plugin_table(document, "model", sections.MODEL_KEYS, "model", registry, ctx)
    resolved["classes"] = _classes(document, ctx)
    resolved["mask"] = _table(document, "mask", sections.MASK_KEYS, ctx)
    _check_ignore_color(resolved["mask"]["ignore_color"], resolved["classes"], ctx)
    resolved["optimizer"] = _table(document, "optimizer", sections.OPTIMIZER_KEYS, ctx)
    resolved["loss"] = _plugin_table(document, "loss", sections.LOSS_KEYS, "loss", registry, ctx)
    resolved["metrics"] = _table(document, "metrics", sections.METRICS_KEYS, ctx)
    for i, name in enumerate(resolved["metrics"]["names"]):
        if name not in registry.entries["metric"]:
            raise ctx.fail(f"metrics.names.{i}", unknown_name_message("metric", name, registry.names("metric")))
    resolved["dataset"] = _plugin_table(document, "dataset", sections.DATASET_KEYS, "dataset", registry, ctx)
    resolved["train"] = _table(document, "train", sections.TRAIN_KEYS, ctx)
    resolved["augment"] = _table(document, "augment", sections.AUGMENT_KEYS, ctx)
    if resolved["augment"]["hed_jitter"] > 0 and resolved["model"]["image_channels"] != 3:
        raise ctx.fail("augment.hed_jitter", "needs RGB images (model.image_channels = 3)",
                       "use stain_jitter for grayscale images, or set hed_jitter = 0")
    callbacks = document.get("callbacks", [])
    if not isinstance(callbacks, list) or not all(isinstance(c, Mapping) for c in callbacks):
        raise ctx.fail("callbacks", "expected [[callbacks]] tables")
    resolved["callbacks"] = [
        _plugin_entry(c, f"callbacks.{i}", PLUGIN_NAME, "callback", registry, ctx) for i, c in enumerate(callbacks)
    ]
    resolved["infer"] = _table(document, "infer", sections.INFER_KEYS, ctx)
    if "instances" in document:  # optional: a project without it is the pixels-only project it always was
        resolved["instances"] = _plugin_table(document, "instances", sections.INSTANCES_KEYS, "instancer",
                                              registry, ctx)
    resolved["slides"] = _table(document, "slides", sections.SLIDES_KEYS, ctx)
    resolved["cv"] = _cv_table(document, ctx)
    _fill_output_paths(resolved, ctx)
    return _build(resolved, ctx)


def _cv_table(document: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """``[cv]``, its grouping complete: a regex that compiles for 'regex', a CSV for 'csv'."""
    import re

    cv = _table(document, "cv", sections.CV_KEYS, ctx)
    needed = {"regex": "group_regex", "csv": "groups_csv"}.get(cv["group_by"])
    if needed is not None and cv[needed] is None:
        raise ctx.fail(f"cv.{needed}", f"is required with group_by = '{cv['group_by']}'",
                       f"set cv.{needed}, or choose another cv.group_by")
    if cv["group_regex"] is not None:
        try:
            re.compile(cv["group_regex"])
        except re.error as exc:
            raise ctx.fail("cv.group_regex", f"is no regular expression ({exc})", "fix the pattern") from None
    return cv


def _fill_output_paths(resolved: dict[str, Any], ctx: Context) -> None:
    project = resolved["project"]
    if project["output_dir"] is None:
        project["output_dir"] = (ctx.source.parent / "runs" / project["name"]).resolve()
    if resolved["infer"]["output"] is None:
        resolved["infer"]["output"] = project["output_dir"] / INFER_DIR


def _without(table: Mapping[str, Any], core: Sequence[Option]) -> dict[str, Any]:
    names = {o.name for o in core}
    return {k: v for k, v in table.items() if k not in names}


def _plugin(record: type[PluginSection], table: Mapping[str, Any]) -> Any:
    """A plugin's section: the core keys as fields, the plugin's own validated keys as ``options``."""
    return build_record(record, table, options=_without(table, options_of(record)))


def _build(resolved: dict[str, Any], ctx: Context) -> Project:
    table = _class_table(resolved["classes"], resolved["mask"])
    return build_record(
        Project, resolved["project"],
        source=ctx.source,
        model=_plugin(ModelSection, resolved["model"]),
        classes=table,
        optimizer=build_record(sections.OptimizerSection, resolved["optimizer"]),
        loss=_plugin(PluginSection, resolved["loss"]),
        metrics=tuple(resolved["metrics"]["names"]),
        dataset=_plugin(PluginSection, resolved["dataset"]),
        train=build_record(sections.TrainSection, resolved["train"]),
        augment=build_record(sections.AugmentSection, resolved["augment"]),
        callbacks=tuple(_plugin(PluginSection, c) for c in resolved["callbacks"]),
        infer=build_record(sections.InferSection, resolved["infer"]),
        instances=_plugin(sections.InstancesSection, resolved["instances"]) if "instances" in resolved else None,
        slides=build_record(sections.SlidesSection, resolved["slides"]),
        cv=build_record(sections.CvSection, resolved["cv"]),
        resolved=resolved,
    )
