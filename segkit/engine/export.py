"""``segkit export``: the best model as a SavedModel, a ``.keras`` file, ONNX or a bioimage.io package.

The SavedModel and ONNX graphs take one uint8 image of any size and return its class-index mask
(and softmax) at that size; resizing or Gaussian-blended tiling is part of the graph
(:mod:`segkit.engine.serving`), so a server needs no segkit code. The ``.keras`` file is the
bare network (float32 model-size input in [0, 1], softmax out), saved without its compile state
so it loads with nothing but the model plugin's package. The bioimage.io package
(:mod:`segkit.engine.export_bioimageio`) holds the bare network with its axes, preprocessing and
test tensors described, because bioimage.io clients tile and call the weights themselves.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from segkit.durable import remove_entry
from segkit.cv.ensemble import load_run_model
from segkit.engine.components import prediction_for
from segkit.engine.runtime import import_tensorflow
from segkit.errors import SegkitError
from segkit.project import Project
from segkit.toml_io import write_atomic

Format = Literal["savedmodel", "keras", "onnx", "bioimageio"]
FORMATS: tuple[Format, ...] = get_args(Format)
EXPORT_DIR = "export"
EXPORT_MARK = "segkit export"
ONNX_OPSET = 17
ONNX_MISSING = ("ONNX export needs the tf2onnx converter, which is not installed here "
                "(pip install 'tf2onnx>=1.17' onnxruntime; 1.17 is the first release that works with "
                "TensorFlow 2.21 and NumPy 2)")


class ExportError(SegkitError):
    """The export cannot be written as asked (target in the way, converter missing or failing)."""


@dataclass(frozen=True)
class PackageFields:
    """What only the user knows of a bioimage.io package (``--author``, ``--license``, ``--cite``)."""

    authors: tuple[str, ...] = ()
    license: str | None = None
    cite: tuple[str, ...] = ()  # each "TEXT | DOI-or-URL"


@dataclass(frozen=True)
class ExportResult:
    format: Format
    path: Path
    metadata: Path
    mode: str
    replaced: list[Path]


def default_target(project: Project, fmt: Format) -> Path:
    folder = project.output_dir / EXPORT_DIR
    if fmt == "bioimageio":
        return folder / f"{project.name}.bioimageio.zip"
    return folder / "savedmodel" if fmt == "savedmodel" else folder / f"{project.name}.{fmt}"


def check_target(target: Path, fmt: Format, overwrite: bool = False) -> list[Path]:
    """Refuse to replace anything but an earlier segkit export; ``overwrite`` lets a file (or
    SavedModel) another tool wrote be replaced, and those are returned to be named."""
    if fmt == "keras" and target.suffix != ".keras":
        raise ExportError(f"{target}: a Keras export must end in .keras")
    if fmt == "bioimageio" and target.suffix != ".zip":
        raise ExportError(f"{target}: a bioimage.io package is a zip file; end --out in .zip")
    if target.exists() and fmt == "savedmodel" and not (target.is_dir() and (
            not any(target.iterdir()) or (target / "saved_model.pb").exists())):
        raise ExportError(f"{target}: exists and is not a SavedModel folder; choose another --out")
    if target.is_dir() and fmt != "savedmodel":
        raise ExportError(f"{target}: is a folder; pass a file name to --out")
    foreign = [path for path in (target, metadata_path(target)) if _is_foreign(path, target, fmt)]
    if foreign and not overwrite:
        raise ExportError(f"{foreign[0]}: exists and was not written by segkit export; choose another --out "
                          "or pass --overwrite to replace it")
    return foreign


def metadata_path(target: Path) -> Path:
    return target.with_name(f"{target.name}.json")


def _is_foreign(path: Path, target: Path, fmt: Format) -> bool:
    """Whether ``path`` exists and is not what an export wrote: the metadata beside every export
    names the digest of the file it describes (``saved_model.pb`` for a SavedModel)."""
    if not (path.exists() or path.is_symlink()):
        return False
    if path.is_dir() and not any(path.iterdir()):
        return False  # an empty folder made for the SavedModel
    try:
        marker = json.loads(metadata_path(target).read_text(encoding="utf-8"))
        ours = marker.get("written_by") == EXPORT_MARK and marker.get("format") == fmt
        return not ours or (path == target and marker.get("sha256") != _digest(target, fmt))
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return True


def _digest(target: Path, fmt: Format) -> str:
    """sha256 of the exported file, or of a SavedModel's ``saved_model.pb``."""
    digest = hashlib.sha256()
    with (target / "saved_model.pb" if fmt == "savedmodel" else target).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require_converter(fmt: str) -> None:
    """Refuse ONNX (bioimageio) before any loading when tf2onnx (bioimageio.spec) is missing."""
    if fmt == "onnx" and importlib.util.find_spec("tf2onnx") is None:
        raise ExportError(ONNX_MISSING)
    if fmt == "bioimageio":
        from segkit.engine.export_bioimageio import require_bioimageio

        require_bioimageio()


def export(project: Project, fmt: Format, out: Path | None = None, overwrite: bool = False,
           package: PackageFields | None = None, folds: Sequence[int] | None = None) -> ExportResult:
    """Write the best model of ``project`` in ``fmt`` to ``out`` (default ``<output_dir>/export/``);
    ``overwrite`` allows replacing files that are not an earlier export; ``package`` is what only
    the user knows of a bioimage.io package (authors, licence, citations); ``folds``: the ensemble of
    those folds' models instead, in one graph."""
    target = (out or default_target(project, fmt)).resolve()
    require_converter(fmt)
    replaced = check_target(target, fmt, overwrite)
    if fmt == "bioimageio":
        from segkit.engine.export_bioimageio import checked_fields

        checked_fields(package or PackageFields())  # a bad licence or citation before the model loads
        tile = _package_tile(project)
    import_tensorflow()
    model = load_run_model(project, folds)
    target.parent.mkdir(parents=True, exist_ok=True)
    how = prediction_for(project)
    if fmt == "keras":
        _replace(target, lambda tmp: model.save(tmp))
    elif fmt == "bioimageio":
        from segkit.engine.export_bioimageio import write_package

        _replace(target, lambda tmp: write_package(project, model, tile, package or PackageFields(), tmp))
    else:
        from segkit.engine.serving import serving_function

        serve, signature = serving_function(model, how, project.model.image_channels, project.classes.num_classes)
        writer = write_savedmodel if fmt == "savedmodel" else write_onnx
        _replace(target, lambda tmp: writer(model, serve, signature, tmp))
    metadata = metadata_path(target)
    mark = {"written_by": EXPORT_MARK, "sha256": _digest(target, fmt)}  # what makes a rerun ours to replace
    ensemble = {"folds": list(folds)} if folds is not None else {}  # whose softmaxes the file averages
    write_atomic(metadata, json.dumps({**describe(project, fmt, how.mode), **ensemble, **mark}, indent=2) + "\n")
    return ExportResult(fmt, target, metadata, how.mode, replaced)


def _replace(target: Path, write: Callable[[Path], object]) -> None:
    """Write beside the target and swap it in, so a failed export leaves the previous one whole."""
    tmp = target.with_name(f".{target.name}.tmp{target.suffix}")
    remove_entry(tmp)
    try:
        write(tmp)
    except Exception:
        remove_entry(tmp)
        raise
    remove_entry(target)
    tmp.rename(target)


def write_savedmodel(model: Any, serve: Any, signature: list[Any], path: Path) -> None:
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    # the first endpoint is also published as "serving_default", the name TF Serving calls
    archive.add_endpoint("serve", serve, input_signature=signature)
    archive.write_out(str(path), verbose=False)


def write_onnx(model: Any, serve: Any, signature: list[Any], path: Path) -> None:
    import tensorflow as tf
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    function = tf.function(serve, input_signature=signature, autograph=False)
    try:
        tf2onnx.convert.from_function(function, input_signature=signature, opset=ONNX_OPSET, output_path=str(path))
    except Exception as exc:  # noqa: BLE001 - the converter's failure is reported, the rest of segkit is fine
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ExportError(f"tf2onnx {tf2onnx.__version__} could not convert the serving graph: "
                          f"{exc.__class__.__name__}: {first}") from None


def _package_tile(project: Project) -> Any:
    """The model-size tile of the first image of the test split (else valid, else train) that the
    package's test tensors and cover are made of."""
    from segkit.engine.components import open_dataset
    from segkit.engine.export_bioimageio import cover_tile
    from segkit.plugins import get_registry

    source = open_dataset(project, get_registry())
    for split in ("test", "valid", "train"):
        pairs = source.pairs(split)
        if pairs:
            return cover_tile(project, source.load(pairs[0])[0])
    raise ExportError("[dataset]: it has no image to make the package's test tensors of")


def describe(project: Project, fmt: Format, mode: str) -> dict[str, Any]:
    """What a server needs to know beside the file: inputs, outputs and the class table."""
    model = project.model
    classes = [{"index": i, "name": c.name, "color": list(c.color)} for i, c in enumerate(project.classes.classes)]
    io: dict[str, Any]
    if fmt == "bioimageio":
        io = {"input": f"image: uint8 (batch, {model.image_height}, {model.image_width}, {model.image_channels}); "
                       "preprocessing in rdf.yaml: float32, times 1/255",
              "output": f"probabilities: float32 (batch, {model.image_height}, {model.image_width}, {len(classes)}) "
                        "softmax"}
    elif fmt == "keras":
        io = {"input": f"float32 (batch, {model.image_height}, {model.image_width}, {model.image_channels}) in [0, 1]",
              "output": f"float32 (batch, {model.image_height}, {model.image_width}, {len(classes)}) softmax"}
    else:
        io = {"input": f"image: uint8 (height, width, {model.image_channels}), any size",
              "output": {"mask": "uint8 (height, width) class indices",
                         "probabilities": f"float32 (height, width, {len(classes)}) softmax"}}
    return {"format": fmt, "project": project.name, "model": model.name, "mode": mode,
            "model_size": [model.image_height, model.image_width], **io, "classes": classes}
