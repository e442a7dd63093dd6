"""``segkit export``: the best model as a SavedModel, a ``.keras`` file or ONNX.

The SavedModel and ONNX graphs take one uint8 image of any size and return its class-index mask
(and softmax) at that size; resizing or Gaussian-blended tiling is part of the graph
(:mod:`segkit.engine.serving`), so a server needs no segkit code. The ``.keras`` file is the
bare network (float32 model-size input in [0, 1], softmax out), saved without its compile state
so it loads with nothing but the model plugin's package.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from segkit.engine.components import prediction_for
from segkit.engine.evaluate import load_best_model
from segkit.engine.runtime import import_tensorflow
from segkit.errors import SegkitError
from segkit.project import Project
from segkit.toml_io import write_atomic

Format = Literal["savedmodel", "keras", "onnx"]
FORMATS: tuple[Format, ...] = get_args(Format)
EXPORT_DIR = "export"
ONNX_OPSET = 17
ONNX_MISSING = ("ONNX export needs the tf2onnx converter, which is not installed here "
                "(pip install 'tf2onnx>=1.17' onnxruntime; 1.17 is the first release that works with "
                "TensorFlow 2.21 and NumPy 2)")


class ExportError(SegkitError):
    """The export cannot be written as asked (target in the way, converter missing or failing)."""


@dataclass(frozen=True)
class ExportResult:
    format: Format
    path: Path
    metadata: Path
    mode: str


def default_target(project: Project, fmt: Format) -> Path:
    folder = project.output_dir / EXPORT_DIR
    return folder / "savedmodel" if fmt == "savedmodel" else folder / f"{project.name}.{fmt}"


def check_target(target: Path, fmt: Format) -> None:
    """Refuse to replace anything that is not an earlier export of the same format."""
    if fmt == "keras" and target.suffix != ".keras":
        raise ExportError(f"{target}: a Keras export must end in .keras")
    if not target.exists():
        return
    if fmt == "savedmodel":
        if target.is_dir() and (not any(target.iterdir()) or (target / "saved_model.pb").exists()):
            return
        raise ExportError(f"{target}: exists and is not a SavedModel folder; choose another --out")
    if target.is_dir():
        raise ExportError(f"{target}: is a folder; pass a file name to --out")


def require_converter(fmt: str) -> None:
    """Refuse ONNX before any loading when its converter is missing."""
    if fmt == "onnx" and importlib.util.find_spec("tf2onnx") is None:
        raise ExportError(ONNX_MISSING)


def export(project: Project, fmt: Format, out: Path | None = None) -> ExportResult:
    """Write the best model of ``project`` in ``fmt`` to ``out`` (default ``<output_dir>/export/``)."""
    target = (out or default_target(project, fmt)).resolve()
    require_converter(fmt)
    check_target(target, fmt)
    import_tensorflow()
    model = load_best_model(project)
    target.parent.mkdir(parents=True, exist_ok=True)
    how = prediction_for(project)
    if fmt == "keras":
        _replace(target, lambda tmp: model.save(tmp))
    else:
        from segkit.engine.serving import serving_function

        serve, signature = serving_function(model, how, project.model.image_channels, project.classes.num_classes)
        writer = _write_savedmodel if fmt == "savedmodel" else _write_onnx
        _replace(target, lambda tmp: writer(model, serve, signature, tmp))
    metadata = target.with_name(f"{target.name}.json")
    write_atomic(metadata, json.dumps(describe(project, fmt, how.mode), indent=2) + "\n")
    return ExportResult(fmt, target, metadata, how.mode)


def _replace(target: Path, write: Callable[[Path], object]) -> None:
    """Write beside the target and swap it in, so a failed export leaves the previous one whole."""
    tmp = target.with_name(f".{target.name}.tmp{target.suffix}")
    _remove(tmp)
    try:
        write(tmp)
    except Exception:
        _remove(tmp)
        raise
    _remove(target)
    tmp.rename(target)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _write_savedmodel(model: Any, serve: Any, signature: list[Any], path: Path) -> None:
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    # the first endpoint is also published as "serving_default", the name TF Serving calls
    archive.add_endpoint("serve", serve, input_signature=signature)
    archive.write_out(str(path), verbose=False)


def _write_onnx(model: Any, serve: Any, signature: list[Any], path: Path) -> None:
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


def describe(project: Project, fmt: Format, mode: str) -> dict[str, Any]:
    """What a server needs to know beside the file: inputs, outputs and the class table."""
    model = project.model
    classes = [{"index": i, "name": c.name, "color": list(c.color)} for i, c in enumerate(project.classes.classes)]
    io: dict[str, Any]
    if fmt == "keras":
        io = {"input": f"float32 (batch, {model.image_height}, {model.image_width}, {model.image_channels}) in [0, 1]",
              "output": f"float32 (batch, {model.image_height}, {model.image_width}, {len(classes)}) softmax"}
    else:
        io = {"input": f"image: uint8 (height, width, {model.image_channels}), any size",
              "output": {"mask": "uint8 (height, width) class indices",
                         "probabilities": f"float32 (height, width, {len(classes)}) softmax"}}
    return {"format": fmt, "project": project.name, "model": model.name, "mode": mode,
            "model_size": [model.image_height, model.image_width], **io, "classes": classes}
