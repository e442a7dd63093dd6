"""The ``qupath-geojson`` dataset: ``[dataset.train|valid|test]`` each with an ``images`` folder and a
``geojson`` folder of QuPath's "Export objects as GeoJSON" files, paired by stem.

Every feature of a file is one object, painted with the project class its QuPath class names
(directly, or through ``class_names``); features of ``region_class`` paint no class but say where
labelling is complete, and pixels outside all of them are ignored, like ``[mask] ignore_color``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segkit.plugin import (
    IGNORE_INDEX,
    BadFeature,
    ClassTable,
    DataError,
    DatasetRequest,
    FeatureFile,
    FileKind,
    LabelCounts,
    Option,
    Pair,
    QuPathFeature,
    SplitFolders,
    geojson_stem,
    image_size,
    is_geojson_name,
    pair_by_stem,
    paint,
    read_features,
    read_image,
    unknown_name_message,
)

GEOJSON_FILES = FileKind("a GeoJSON file", "GeoJSON files", named=is_geojson_name, stem=geojson_stem)
_FOLDERS = (
    Option("images", "dir", help="folder of images (.png .jpg .jpeg .tif .tiff .bmp)"),
    Option("geojson", "dir", help="folder of QuPath GeoJSON exports (.geojson .json .geojson.gz), one per image "
           "with the same file stem"),
)
OPTIONS = (
    *(Option(split, "table", None, f"the {split} split", fields=_FOLDERS) for split in ("train", "valid", "test")),
    Option("class_names", "str_list", [], 'QuPath class names that differ from the project\'s, as "QuPath=class" '
           '(e.g. ["Tumor=malignant"]); names are matched as QuPath writes them, case included'),
    Option("region_class", "str", None, "QuPath class of the regions where labelling is complete: pixels outside "
           "every such feature are ignored; unset: every pixel is labelled (unlabelled ones are background)"),
    Option("skip_bad_features", "bool", False, "leave out features that cannot be used (each is reported) "
           "instead of refusing their file"),
)
#: the class value a region feature resolves to (it paints no class)
_REGION = -1


@dataclass(frozen=True)
class ClassMap:
    """How QuPath class names become project class indices."""

    indices: Mapping[str, int]
    region: str | None

    def resolve(self, feature: QuPathFeature) -> int | BadFeature:
        """The feature's class index, ``_REGION``, or the BadFeature saying why it has none."""
        name = feature.class_name
        if name is None:
            return BadFeature(feature.index, "has no classification", advice="classify it in QuPath and export "
                              "again, or set [dataset] skip_bad_features = true")
        if name == self.region:
            return _REGION
        if name in self.indices:
            return self.indices[name]
        known = [*self.indices, *([self.region] if self.region else [])]
        return BadFeature(feature.index, unknown_name_message("QuPath class", name, known).replace("'", '"'),
                          advice=f'add it to [[classes]], map it with [dataset] class_names = ["{name}=<class>"], '
                          "or set [dataset] skip_bad_features = true")


def class_map(options: Mapping[str, object], classes: ClassTable) -> ClassMap:
    """The project's class names plus ``class_names``' entries; a ValueError for a malformed entry."""
    indices = {name: index for index, name in enumerate(classes.names)}
    region = options.get("region_class")
    entries = options.get("class_names") or []
    assert isinstance(entries, list)
    for entry in entries:
        qupath, equals, target = entry.partition("=")
        if not equals or not qupath or not target:
            raise ValueError(f'class_names: "{entry}" is not "QuPath name=class name" (e.g. "Tumor=malignant")')
        if target not in classes.names:
            raise ValueError(f"class_names: {entry}: " + unknown_name_message("class", target, classes.names))
        if qupath == region:
            raise ValueError(f"class_names: {entry}: {qupath} is the region_class, which paints no class")
        indices[qupath] = classes.names.index(target)
    return ClassMap(indices, region if isinstance(region, str) else None)


@dataclass(frozen=True)
class Labelled:
    """One GeoJSON file resolved against the class map: its objects with their classes, its regions,
    and the features set aside (skipped bad ones, points and lines)."""

    file: FeatureFile
    objects: tuple[QuPathFeature, ...]
    classes: tuple[int, ...]
    regions: tuple[QuPathFeature, ...]
    bad: tuple[BadFeature, ...]


class QuPathGeoJSON:
    """A CheckedSource, NotedSource, InstanceSource, CountedSource and PartialSource over images and GeoJSON files."""

    def __init__(self, splits: Mapping[str, SplitFolders], classes: ClassTable, image_channels: int,
                 classes_of: ClassMap, skip_bad: bool) -> None:
        self._splits = dict(splits)
        self._table = classes
        self._channels = image_channels
        self._map = classes_of
        self._skip_bad = skip_bad
        self._set_aside: dict[Path, list[str]] = {}
        self._lock = threading.Lock()

    def folders(self) -> dict[str, SplitFolders]:
        """The ``images`` and ``geojson`` folders of each split (the GeoJSON as the masks)."""
        return dict(self._splits)

    def label_kind(self) -> FileKind:
        return GEOJSON_FILES

    def partial_labels(self) -> bool:
        """With a region class, pixels outside the regions are ignored."""
        return self._map.region is not None

    def pairs(self, split: str) -> list[Pair]:
        if split not in self._splits:
            raise DataError(f"the dataset has no '{split}' split; add [dataset.{split}] with images and geojson folders")
        folders = self._splits[split]
        return pair_by_stem(folders.images, folders.masks, mask_kind=GEOJSON_FILES)

    def check(self, split: str) -> list[Pair]:
        """Every image's header read and every GeoJSON parsed and resolved (nothing rasterised)."""
        pairs = self.pairs(split)
        for pair in pairs:
            self.labelled(pair.mask, image_size(pair.image, verify=True))
        return pairs

    def labelled(self, path: Path, size: tuple[int, int]) -> Labelled:
        """``path`` read for an image of ``size`` ``(width, height)``; its first bad feature is a
        DataError unless ``skip_bad_features``, and what is set aside is noted either way."""
        file = read_features(path, size)
        labelled = self.sorted_out(file)
        if labelled.bad and not self._skip_bad:
            raise file.error(labelled.bad[0])
        self._note(labelled)
        return labelled

    def sorted_out(self, file: FeatureFile) -> Labelled:
        """``file``'s features as objects (with their classes), regions and bad ones."""
        resolved = [(feature, self._map.resolve(feature)) for feature in file.features]
        bad = sorted([*file.bad, *(value for _, value in resolved if isinstance(value, BadFeature))],
                     key=lambda item: item.index)
        kept = [(feature, value) for feature, value in resolved if isinstance(value, int)]
        objects = [(feature, value) for feature, value in kept if value != _REGION]
        return Labelled(file, tuple(f for f, _ in objects), tuple(v for _, v in objects),
                        tuple(f for f, v in kept if v == _REGION), tuple(bad))

    def _note(self, labelled: Labelled) -> None:
        file = labelled.file
        lines = [f"{file.where(item.index)}: {item.problem} (skipped)" for item in labelled.bad]
        if file.without_area:
            kinds = sorted({item.problem.split(",")[0].removeprefix("is a ") for item in file.without_area})
            lines.append(f"{file.shown}: {len(file.without_area)} feature(s) without area ({', '.join(kinds)}) "
                         "left out")
        if self._map.region is not None and not labelled.regions:
            lines.append(f"{file.shown}: no '{self._map.region}' feature, so none of its pixels count (draw the "
                         "regions where labelling is complete)")
        if lines:
            with self._lock:
                self._set_aside[file.path] = lines

    def rasterised(self, labelled: Labelled, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """``(class indices (H, W) uint8, object ids (H, W) int32)``: ids 1..N in file order, 0 off objects;
        outside every region (where there is a region class) the classes are IGNORE_INDEX."""
        ids = paint([f.geometry for f in labelled.objects], range(1, len(labelled.objects) + 1), shape)
        mask = np.array([0, *labelled.classes], np.uint8)[ids]
        if self._map.region is not None:
            inside = paint([f.geometry for f in labelled.regions], [1] * len(labelled.regions), shape, np.uint8)
            mask[inside == 0] = IGNORE_INDEX
        return mask, ids

    def _decoded(self, pair: Pair) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        image = read_image(pair.image, self._channels)
        height, width = image.shape[:2]
        mask, ids = self.rasterised(self.labelled(pair.mask, (width, height)), (height, width))
        return image, mask, ids

    def load(self, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
        image, mask, _ = self._decoded(pair)
        return image, mask

    def instances(self, pair: Pair) -> np.ndarray:
        """Each non-region feature is one object: its id is its place among them, 1-based."""
        width, height = image_size(pair.image)
        return self.rasterised(self.labelled(pair.mask, (width, height)), (height, width))[1]

    def label_counts(self, image: Path, labels: Path) -> LabelCounts:
        """What ``segkit stats`` reports of one pair: class pixels, objects per class, unknown class
        names; bad features are counted, not raised."""
        width, height = image_size(image)
        file = read_features(labels, (width, height))
        labelled = self.sorted_out(file)
        unknown = Counter(f.class_name or "(unclassified)" for f in file.features
                          if isinstance(self._map.resolve(f), BadFeature))
        mask, _ = self.rasterised(labelled, (height, width))
        objects = np.bincount(np.array(labelled.classes, np.int64), minlength=self._table.num_classes)
        return LabelCounts((width, height), np.bincount(mask.ravel(), minlength=256).astype(np.int64),
                           objects.astype(np.int64), dict(unknown), len(labelled.bad))

    def notes(self) -> list[str]:
        with self._lock:
            return [line for path in sorted(self._set_aside) for line in self._set_aside[path]]


def open_qupath_geojson(request: DatasetRequest) -> QuPathGeoJSON:
    splits = {split: SplitFolders(folders["images"], folders["geojson"])
              for split, folders in request.options.items()
              if split in ("train", "valid", "test") and folders is not None}
    return QuPathGeoJSON(splits, request.classes, request.image_channels,
                         class_map(request.options, request.classes), bool(request.options["skip_bad_features"]))
