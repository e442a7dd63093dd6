"""``segkit prepare qupath-geojson``: a categorized-mask dataset -> QuPath GeoJSON annotations.

``SOURCE/<split>/{images,masks[,instances]}`` (what ``segkit prepare ucsb-bcc`` and the
synthetic-he cache hold) becomes ``OUT/<split>/{images,geojson}``, the layout the
``qupath-geojson`` dataset reads, and a project file for it. Each object is an *annotation*
(editable in QuPath, where a detection is not) in its class's name and colour, outlined exactly
along its pixels (:mod:`segkit.objects.outlines`), so reading the file back with the "pixel centre
inside" rule gives the same pixels. Objects are the split's instance ids where it has an
``instances`` folder, else the connected components of each class, as ``segkit eval`` counts them.

Partial labels survive the trip: when the project's ``[mask]`` has an ``ignore_color``, every
file gets one more annotation of the ``region_class``: the labelled (not ignored) area, which
the written project names as its region class, so that everything outside it is ignored again.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segkit.plugin import (
    ANNOTATION,
    IGNORE_INDEX,
    REQUIRED,
    ClassInfo,
    ClassTable,
    DataError,
    FolderDataset,
    Option,
    Pair,
    PrepareReport,
    PreparerRequest,
    SplitFolders,
    object_outlines,
    prepared_files,
    project_classes,
    qupath_properties,
    read_project_document,
    staged_output,
    toml_dumps,
    truth_objects,
    write_atomic,
    write_features,
)

PROJECT_FILE = "qupath-geojson.toml"
WRITTEN_BY = "segkit prepare qupath-geojson"
#: the region annotations' colour in QuPath: a blue no class table of segkit's examples uses
REGION_COLOR = (0, 90, 255)
#: the tables after ``[[classes]]`` copied from the source project as written (``[model]`` comes
#: before the classes); none of segkit's own keys there is a path, which would need rewriting
TRAINING_TABLES = ("optimizer", "loss", "metrics", "train", "augment", "instances")
#: the splits a project names, in the order training uses them
SPLITS = ("train", "valid", "test")

QUPATH_OPTIONS = (
    Option("project", "path", REQUIRED, "segkit project whose [[classes]] and [mask] decode the masks"),
    Option("region_class", "str", "Region", "QuPath class of the annotation that outlines each image's "
           "labelled (not ignored) area; written only when the project's [mask] has an ignore_color"),
    Option("compress_geojson", "bool", False, "write <stem>.geojson.gz instead of <stem>.geojson"),
    Option("overwrite", "bool", False, "write into a non-empty output folder, replacing earlier output"),
)


@dataclass(frozen=True)
class Settings:
    project: Path
    region_class: str
    compress_geojson: bool
    overwrite: bool


@dataclass(frozen=True)
class Converted:
    """What converting one image gave: its objects, and whether its image file was linked."""

    objects: int
    reclassed_pixels: int
    linked: bool


def settings_from(options: Mapping[str, Any]) -> Settings:
    """Options as the CLI validated them (direct calls may leave out those with defaults)."""
    defaults = {o.name: o.default for o in QUPATH_OPTIONS if not o.required}
    merged = {**defaults, **options}
    if "project" not in merged:
        raise DataError("qupath-geojson: option project is missing (pass --option project=PATH, the segkit "
                        "project whose [[classes]] decode the masks)")
    return Settings(Path(merged["project"]), str(merged["region_class"]), bool(merged["compress_geojson"]),
                    bool(merged["overwrite"]))


def source_splits(source: Path) -> dict[str, SplitFolders]:
    """The splits of ``source``: each of its ``train``, ``valid`` and ``test`` folders (the splits a
    project names) holding ``images`` and ``masks`` folders, with ``instances`` where it has one."""
    splits = {}
    for split in SPLITS:
        folder = source / split
        if (folder / "images").is_dir() and (folder / "masks").is_dir():
            instances = folder / "instances"
            splits[split] = SplitFolders(folder / "images", folder / "masks", instances if instances.is_dir() else None)
    if not splits:
        raise DataError(f"{source}: holds no train, valid or test folder with images/ and masks/ inside (pass a "
                        "folder laid out as <split>/images and <split>/masks, e.g. what segkit prepare ucsb-bcc writes)")
    return splits


def check_region_class(name: str, classes: ClassTable, project: Path) -> None:
    """The region class must be no class of the project: its annotations would read back as objects."""
    if not name.strip():
        raise DataError("qupath-geojson: option region_class is empty (name the QuPath class of the "
                        "labelled area, e.g. --option region_class=Region)")
    if name in classes.names:
        raise DataError(f"qupath-geojson: option region_class '{name}' is a class of {project} (pick a name no "
                        "class has, e.g. --option region_class=Region)")


def mask_objects(mask: np.ndarray, ids: np.ndarray | None, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The objects of one mask: ``(labels (H, W) int32 1..N, classes (N,))`` covering exactly its
    class pixels. With instance ids, an id is one object of its majority class over its class
    pixels (its background and ignored pixels are no part of it), and class pixels no id covers
    are the connected components of their class, after the ids' objects; without ids, every
    object is such a component (:func:`segkit.plugin.truth_objects`)."""
    if ids is None:
        return truth_objects(mask, None, num_classes)
    foreground = (mask >= 1) & (mask < num_classes)
    labels, classes = truth_objects(mask, np.where(foreground, ids, 0), num_classes)
    stray = foreground & (labels == 0)
    if not stray.any():
        return labels, classes
    extra_labels, extra_classes = truth_objects(np.where(stray, mask, 0), None, num_classes)
    labels[stray] = extra_labels[stray] + len(classes)
    return labels, np.concatenate([classes, extra_classes])


def labelled_area(mask: np.ndarray) -> Any | None:
    """The not-ignored pixels of ``mask`` as one (Multi)Polygon, None when every pixel is ignored."""
    area = (mask != IGNORE_INDEX).astype(np.int32)
    return object_outlines(area, 1)[0] if area.any() else None


def place_image(image: Path, target: Path) -> bool:
    """Put ``image`` at ``target``: a hard link where both lie on one file system (no bytes copied,
    and unlike a symbolic link it survives the source folder being moved or deleted), else a copy.
    Returns whether it was linked."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(image, target)
        return True
    except OSError:  # another file system, or one without hard links
        shutil.copy2(image, target)
        return False


def convert_pair(dataset: FolderDataset, pair: Pair, folder: Path, classes: ClassTable,
                 settings: Settings, regions: bool) -> Converted:
    """Write ``pair``'s image and its objects' GeoJSON into ``folder`` (a split of the staging folder)."""
    _image, mask = dataset.load(pair)
    labels, object_classes = mask_objects(mask, dataset.instances(pair), classes.num_classes)
    geometries = object_outlines(labels, len(object_classes))
    properties = [qupath_properties(ANNOTATION, classes.classes[int(c)]) for c in object_classes]
    area = labelled_area(mask) if regions else None
    if area is not None:  # last, so the objects' feature numbers are their ids
        geometries.append(area)
        properties.append(qupath_properties(ANNOTATION, ClassInfo(settings.region_class, REGION_COLOR)))
    suffix = ".geojson.gz" if settings.compress_geojson else ".geojson"
    write_features(folder / "geojson" / f"{pair.stem}{suffix}", geometries,
                   [str(uuid.uuid4()) for _ in geometries], properties, settings.compress_geojson)
    lookup = np.r_[0, object_classes].astype(np.int64)
    painted = (labels > 0) & (lookup[labels] != mask)
    return Converted(len(object_classes), int(painted.sum()), place_image(pair.image, folder / "images" / pair.image.name))


def project_document(source: Mapping[str, Any], classes: ClassTable, splits: Sequence[str], settings: Settings,
                     regions: bool) -> dict[str, Any]:
    """The segkit project of the converted folder: the source project's name, seed, model and
    training tables (``source``, its document as written), its classes, and the ``qupath-geojson``
    dataset with paths relative to the file, so the folder can be moved."""
    table = source.get("project")
    written: Mapping[str, Any] = table if isinstance(table, Mapping) else {}
    name = written.get("name") if isinstance(written.get("name"), str) else "dataset"
    dataset: dict[str, Any] = {"name": "qupath-geojson"}
    if regions:
        dataset["region_class"] = settings.region_class
    dataset.update({split: {"images": f"{split}/images", "geojson": f"{split}/geojson"} for split in splits})
    document: dict[str, Any] = {
        "project": {"name": f"{name}-qupath", **({"seed": written["seed"]} if "seed" in written else {})},
        **({"model": source["model"]} if "model" in source else {}),
        "classes": [{"name": c.name, "color": list(c.color)} for c in classes.classes],
        **{table: source[table] for table in TRAINING_TABLES if table in source},
        "dataset": dataset,
    }
    if "test" in splits:
        document["infer"] = {"images": "test/images"}
    return document


def _notes(converted: Mapping[str, list[Converted]], dataset: FolderDataset, settings: Settings,
           regions: bool) -> list[str]:
    every = [c for split in converted.values() for c in split]
    linked = sum(c.linked for c in every)
    notes = [f"{split}: {sum(c.objects for c in items)} objects as QuPath annotations"
             for split, items in converted.items()]
    notes.append(f"images: {linked} hard-linked, {len(every) - linked} copied (another file system)"
                 if linked < len(every) else f"images: all {linked} hard-linked (no bytes copied)")
    if regions:
        notes.append(f"each file outlines its labelled area as a '{settings.region_class}' annotation; the "
                     "project names it as [dataset] region_class")
    reclassed = sum(c.reclassed_pixels for c in every)
    if reclassed:
        notes.append(f"{reclassed} pixels of instances that span two classes took their instance's majority class")
    return notes + dataset.notes()


def prepare_qupath(request: PreparerRequest) -> PrepareReport:
    """Convert ``request.source`` (categorized-mask split folders) into ``request.output``."""
    settings = settings_from(request.options)
    classes, written_project = project_classes(settings.project), read_project_document(settings.project)
    regions = classes.ignore_color is not None
    if regions:
        check_region_class(settings.region_class, classes, settings.project)
    folders = source_splits(request.source)
    dataset = FolderDataset(folders, classes)
    pairs = {split: dataset.check(split) for split in folders}  # every header, before anything is written
    earlier = prepared_files(request.output) if settings.overwrite and request.output.is_dir() else set()
    with staged_output(request.output, [*folders, PROJECT_FILE], overwrite=settings.overwrite,
                       written_by=WRITTEN_BY) as staging:
        converted = {split: [convert_pair(dataset, pair, staging / split, classes, settings, regions)
                             for pair in split_pairs] for split, split_pairs in pairs.items()}
        header = f"# {WRITTEN_BY} {request.source.resolve()}, classes of {settings.project.resolve()}\n\n"
        write_atomic(staging / PROJECT_FILE,
                     header + toml_dumps(project_document(written_project, classes, list(folders), settings, regions)))
    notes = [f"overwrite: replaced the {len(earlier)} file(s) of an earlier preparation"] if earlier else []
    if "model" not in written_project:
        notes.append(f"{settings.project} has no [model] table, so neither has {PROJECT_FILE}: add one before training")
    return PrepareReport(counts={split: len(items) for split, items in pairs.items()},
                         project_file=request.output / PROJECT_FILE,
                         notes=tuple(notes + _notes(converted, dataset, settings, regions)))
