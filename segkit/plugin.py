"""Everything a segkit plugin may use, in one import: ``from segkit.plugin import ModelSpec, hookimpl``.

This is the public surface for plugin authors (as ``pytest/__init__.py`` is for pytest's): the
hook marker, the records hooks return and the requests their builders receive, the key
declarations, the class table, a project file's classes and document, the errors a plugin may
raise, and the helpers the built-in plugins are made of (image I/O, folder datasets, prediction,
object outlines and QuPath GeoJSON). Names here keep their meaning
across releases; a plugin that imports from any other ``segkit`` module depends on internals
that may move. Importing this module imports no TensorFlow.

The hooks themselves are specified in :mod:`segkit.hookspecs`; ``docs/plugins.md`` walks
through writing a plugin.
"""

from __future__ import annotations

from segkit import hookimpl
from segkit.classes import IGNORE_INDEX, RGB, ClassInfo, ClassTable, distinct_colors, safe_names
from segkit.data.folders import FolderDataset, SplitFolders
from segkit.data.images import image_size, read_image, read_mask, read_mask_source, write_png
from segkit.data.pairing import FileKind, Pair, list_images, pair_by_stem, scan_image_folder
from segkit.data.prepared_output import prepared_files, staged_output
from segkit.data.resize import montage, resize_image, resize_mask
from segkit.engine.predict import segment
from segkit.engine.prediction import Prediction
from segkit.errors import DataError, PluginError, ProjectError, SegkitError
from segkit.objects.classify import instances_from_labels
from segkit.objects.geojson_out import ANNOTATION, qupath_properties, write_features
from segkit.objects.geojson_in import (
    BadFeature,
    FeatureFile,
    QuPathFeature,
    geojson_stem,
    is_geojson_name,
    paint,
    read_features,
)
from segkit.objects.labels import instance_label_size, read_instance_labels, truth_objects, write_instance_labels
from segkit.objects.outlines import object_outlines
from segkit.options import REQUIRED, Option, OptionKind
from segkit.project import project_classes
from segkit.project_file import read_document as read_project_document
from segkit.plugins import unknown_name_message
from segkit.run_folder import EPOCH_CHANGE_DIR
from segkit.slides.open_slide import (
    WHITE,
    ClosesOnExit,
    level_origin,
    missing_slide_library,
    slide_downsamples,
    undecodable_region,
)
from segkit.specs import (
    CallbackRequest,
    CallbackSpec,
    CheckedSource,
    CountedSource,
    DatasetRequest,
    DatasetSource,
    DatasetSpec,
    FolderSource,
    GroupedSource,
    InstancerRequest,
    Instances,
    InstancerSpec,
    InstanceSource,
    LabelCounts,
    LossRequest,
    LossSpec,
    MetricRequest,
    MetricSpec,
    ModelFootprint,
    ModelRequest,
    ModelSpec,
    NotedSource,
    PartialSource,
    PrepareReport,
    PreparerRequest,
    PreparerSpec,
    Slide,
    SlideReaderSpec,
)
from segkit.text import visible
from segkit.toml_io import dumps as toml_dumps
from segkit.toml_io import write_atomic

__all__ = [
    "ANNOTATION",
    "EPOCH_CHANGE_DIR",
    "IGNORE_INDEX",
    "REQUIRED",
    "RGB",
    "WHITE",
    "BadFeature",
    "CallbackRequest",
    "CallbackSpec",
    "CheckedSource",
    "ClassInfo",
    "ClassTable",
    "ClosesOnExit",
    "CountedSource",
    "DataError",
    "DatasetRequest",
    "DatasetSource",
    "DatasetSpec",
    "FeatureFile",
    "FileKind",
    "FolderDataset",
    "FolderSource",
    "GroupedSource",
    "InstanceSource",
    "InstancerRequest",
    "InstancerSpec",
    "Instances",
    "LabelCounts",
    "LossRequest",
    "LossSpec",
    "MetricRequest",
    "MetricSpec",
    "ModelFootprint",
    "ModelRequest",
    "ModelSpec",
    "NotedSource",
    "Option",
    "OptionKind",
    "Pair",
    "PartialSource",
    "PluginError",
    "Prediction",
    "PrepareReport",
    "PreparerRequest",
    "PreparerSpec",
    "ProjectError",
    "QuPathFeature",
    "SegkitError",
    "Slide",
    "SlideReaderSpec",
    "SplitFolders",
    "distinct_colors",
    "geojson_stem",
    "hookimpl",
    "image_size",
    "instance_label_size",
    "instances_from_labels",
    "is_geojson_name",
    "level_origin",
    "list_images",
    "missing_slide_library",
    "montage",
    "object_outlines",
    "paint",
    "pair_by_stem",
    "prepared_files",
    "project_classes",
    "qupath_properties",
    "read_features",
    "read_image",
    "read_instance_labels",
    "read_mask",
    "read_mask_source",
    "read_project_document",
    "resize_image",
    "resize_mask",
    "safe_names",
    "scan_image_folder",
    "segment",
    "slide_downsamples",
    "staged_output",
    "toml_dumps",
    "truth_objects",
    "undecodable_region",
    "unknown_name_message",
    "visible",
    "write_atomic",
    "write_features",
    "write_instance_labels",
    "write_png",
]
