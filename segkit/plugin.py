"""Everything a segkit plugin may use, in one import: ``from segkit.plugin import ModelSpec, hookimpl``.

This is the public surface for plugin authors (as ``pytest/__init__.py`` is for pytest's): the
hook marker, the records hooks return and the requests their builders receive, the key
declarations, the class table, the errors a plugin may raise, and the helpers the built-in
plugins are made of (image I/O, folder datasets, prediction). Names here keep their meaning
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
from segkit.data.pairing import Pair, list_images, pair_by_stem, scan_image_folder
from segkit.data.prepared_output import prepared_files, staged_output
from segkit.data.resize import montage, resize_image, resize_mask
from segkit.engine.predict import segment
from segkit.engine.prediction import Prediction
from segkit.errors import DataError, PluginError, ProjectError, SegkitError
from segkit.objects.classify import instances_from_labels
from segkit.objects.labels import instance_label_size, read_instance_labels, truth_objects, write_instance_labels
from segkit.options import REQUIRED, Option, OptionKind
from segkit.run_folder import EPOCH_CHANGE_DIR
from segkit.specs import (
    CallbackRequest,
    CallbackSpec,
    CheckedSource,
    DatasetRequest,
    DatasetSource,
    DatasetSpec,
    FolderSource,
    InstancerRequest,
    Instances,
    InstancerSpec,
    InstanceSource,
    LossRequest,
    LossSpec,
    MetricRequest,
    MetricSpec,
    ModelFootprint,
    ModelRequest,
    ModelSpec,
    NotedSource,
    PrepareReport,
    PreparerRequest,
    PreparerSpec,
)
from segkit.toml_io import dumps as toml_dumps
from segkit.toml_io import write_atomic

__all__ = [
    "EPOCH_CHANGE_DIR",
    "IGNORE_INDEX",
    "REQUIRED",
    "RGB",
    "CallbackRequest",
    "CallbackSpec",
    "CheckedSource",
    "ClassInfo",
    "ClassTable",
    "DataError",
    "DatasetRequest",
    "DatasetSource",
    "DatasetSpec",
    "FolderDataset",
    "FolderSource",
    "InstanceSource",
    "InstancerRequest",
    "InstancerSpec",
    "Instances",
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
    "PluginError",
    "Prediction",
    "PrepareReport",
    "PreparerRequest",
    "PreparerSpec",
    "ProjectError",
    "SegkitError",
    "SplitFolders",
    "hookimpl",
    "image_size",
    "instance_label_size",
    "instances_from_labels",
    "list_images",
    "distinct_colors",
    "montage",
    "pair_by_stem",
    "prepared_files",
    "read_image",
    "read_instance_labels",
    "read_mask",
    "read_mask_source",
    "resize_image",
    "resize_mask",
    "safe_names",
    "scan_image_folder",
    "segment",
    "staged_output",
    "toml_dumps",
    "truth_objects",
    "write_atomic",
    "write_instance_labels",
    "write_png",
]
