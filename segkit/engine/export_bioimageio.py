"""``segkit export --format bioimageio``: a bioimage.io model package (format 0.5) of the best model.

A bioimage.io client (QuPath, deepImageJ, bioimageio.core) tiles the image itself and calls the
weights on ``batch, y, x, channel`` tensors, so the package holds the bare network at its training
size, not the any-size serving graph of the other exports: ``float32 (b, h, w, C)`` in [0, 1] ->
``float32 (b, h, w, K)`` softmax. The scaling to [0, 1] is written in ``rdf.yaml`` as preprocessing
(uint8 input, ``ensure_dtype`` float32, ``scale_linear`` 1/255) so a client applies it visibly.
The tile size is fixed (the model's input size): a model trained on resized images has learned
that scale, and a fixed size is the one any segkit model plugin accepts.
"""

from __future__ import annotations

import importlib.util
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from segkit.engine.export import ONNX_OPSET, ExportError, PackageFields, write_onnx, write_savedmodel
from segkit.project import Project

BIOIMAGEIO_MISSING = ("the bioimageio format needs bioimageio.spec, which is not installed here "
                      "(pip install 'segkit[bioimageio]', or pip install 'bioimageio.spec>=0.5.12')")
PYDANTIC_CLASH = ("bioimageio.spec {spec} cannot save a package with pydantic {pydantic} (pip install 'pydantic<2.14', "
                  "or a bioimageio.spec of 0.5.14.3 or later)")
LICENCE_FIX = "not an SPDX licence id that bioimageio.spec knows (give one such as MIT or CC-BY-4.0, see spdx.org/licenses)"
CITE_FIX = "not a citation (write it as 'TEXT | DOI', a DOI starting 10., or 'TEXT | https://URL')"
INPUT_ID, OUTPUT_ID = "image", "probabilities"
CHANNEL_NAMES = {1: ["gray"], 3: ["red", "green", "blue"], 4: ["red", "green", "blue", "alpha"]}


def require_bioimageio() -> None:
    """Refuse the format before any loading when bioimageio.spec is missing or cannot write here."""
    if importlib.util.find_spec("bioimageio") is None or importlib.util.find_spec("bioimageio.spec") is None:
        raise ExportError(BIOIMAGEIO_MISSING)
    from importlib.metadata import version

    spec, pydantic = version("bioimageio.spec"), version("pydantic")
    if _release(spec) < (0, 5, 14, 3) and _release(pydantic) >= (2, 14):
        # spec < 0.5.14.3 hands pydantic's SerializationInfo to a wrap serializer as its index, which
        # pydantic 2.14 rejects (pydantic#13506): no package could be saved
        raise ExportError(PYDANTIC_CLASH.format(spec=spec, pydantic=pydantic))


def _release(text: str) -> tuple[int, ...]:
    from packaging.version import Version

    return Version(text).release


def checked_fields(fields: PackageFields) -> dict[str, Any]:
    """``authors``, ``cite`` and ``license`` as bioimageio.spec nodes; one ExportError naming the option."""
    from bioimageio.spec.model.v0_5 import Author, CiteEntry, LicenseId
    from pydantic import ValidationError

    def parsed(option: str, value: str, make: Any, reason: str | None = None) -> Any:
        """``make()``, or one line naming the option: ``reason``, else pydantic's first message."""
        try:
            return make()
        except (ValidationError, ValueError) as exc:
            found = exc.errors()[0]["msg"][:120] if isinstance(exc, ValidationError) else str(exc)
            raise ExportError(f"{option} {value!r}: {reason or found}") from None

    authors = [parsed("--author", name, lambda n=name: Author(name=n.strip())) for name in fields.authors]
    cite = [parsed("--cite", entry, lambda e=entry: _cite_entry(CiteEntry, e), CITE_FIX) for entry in fields.cite]
    # pydantic's licence error lists every SPDX id; one line says it shorter
    licence = None if fields.license is None else parsed(
        "--license", fields.license, lambda: LicenseId(fields.license), LICENCE_FIX)
    return {"authors": authors, "cite": cite, "license": licence}


def _cite_entry(entry: Any, value: str) -> Any:
    text, bar, where = value.rpartition("|")
    if not bar or not text.strip():
        raise ValueError(CITE_FIX)
    where = where.strip()
    return entry(text=text.strip(), **({"url": where} if where.startswith("http") else {"doi": where}))


def missing_fields(fields: PackageFields) -> list[str]:
    """A note per field left empty: the spec accepts an empty list or no licence, with a warning."""
    given = {"--author": fields.authors, "--license": fields.license, "--cite": fields.cite}
    empty = {"--author": "an empty authors list", "--license": "no license", "--cite": "an empty cite list"}
    return [f"no {option}: rdf.yaml has {empty[option]} (bioimage.io validation warns, it does not fail; "
            f"add {option} before sharing the package)" for option, value in given.items() if not value]


def write_package(project: Project, model: Any, tile: np.ndarray, fields: PackageFields, path: Path) -> None:
    """The zip at ``path``: rdf.yaml, SavedModel (and ONNX where tf2onnx is installed) weights,
    test tensors, cover and README, validated by bioimageio.spec while it is saved."""
    from bioimageio.spec import save_bioimageio_package

    with tempfile.TemporaryDirectory(prefix="segkit-bioimageio-") as folder:
        work = Path(folder)
        weights = _write_weights(project, model, work)
        test_input = tile[None]  # (1, h, w, C) uint8, what the client feeds before preprocessing
        test_output = _run_savedmodel(work / "savedmodel", test_input)
        np.save(work / "test_input.npy", test_input)
        np.save(work / "test_output.npy", test_output)
        _write_cover(project, tile, test_output[0].argmax(-1), work / "cover.png")
        _write_samples(tile, test_output[0], work)
        (work / "README.md").write_text(readme(project, weights), encoding="utf-8")
        description = _description(project, work, weights, checked_fields(fields))
        save_bioimageio_package(description, output_path=path)


def _network(model: Any, project: Project) -> tuple[Any, list[Any]]:
    import tensorflow as tf

    def probabilities(image: Any) -> dict[str, Any]:
        return {OUTPUT_ID: tf.cast(model(image, training=False), tf.float32)}

    m = project.model
    return probabilities, [tf.TensorSpec([None, m.image_height, m.image_width, m.image_channels], tf.float32,
                                         name=INPUT_ID)]


def _write_weights(project: Project, model: Any, work: Path) -> dict[str, Path]:
    """The SavedModel zipped with its files at the archive's root, as bioimage.io unpacks it, and ONNX."""
    network, signature = _network(model, project)
    write_savedmodel(model, network, signature, work / "savedmodel")
    bundle = work / "tf_saved_model.zip"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted((work / "savedmodel").rglob("*")):
            archive.write(file, file.relative_to(work / "savedmodel").as_posix())
    weights = {"tensorflow_saved_model_bundle": bundle}
    if importlib.util.find_spec("tf2onnx") is not None:
        write_onnx(model, network, signature, work / "weights.onnx")
        weights["onnx"] = work / "weights.onnx"
    return weights


def _run_savedmodel(folder: Path, test_input: np.ndarray) -> np.ndarray:
    """The test output as the written SavedModel computes it (preprocessing as rdf.yaml declares it)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(folder))  # held: its variables die with it
    return np.asarray(loaded.serve(tf.constant(test_input.astype(np.float32) / 255.0))[OUTPUT_ID])


def _write_cover(project: Project, tile: np.ndarray, mask: np.ndarray, path: Path) -> None:
    """The input tile beside its predicted mask in the class colours (2:1, as bioimage.io recommends)."""
    from PIL import Image

    palette = np.array([c.color for c in project.classes.classes], np.uint8)
    rgb = np.repeat(tile, 3, axis=-1) if tile.shape[-1] == 1 else tile[..., :3]
    Image.fromarray(np.concatenate([rgb, palette[mask]], axis=1)).save(path)


def _write_samples(tile: np.ndarray, probabilities: np.ndarray, work: Path) -> None:
    """The test tensors as images a person can open (the spec's sample tensors: no .npy)."""
    import tifffile
    from PIL import Image

    Image.fromarray(tile.squeeze(-1) if tile.shape[-1] == 1 else tile).save(work / "sample_input.png")
    # one page, a sample per class (not RGB: the classes are no colours)
    tifffile.imwrite(work / "sample_output.tif", probabilities.astype(np.float32), photometric="minisblack",
                     planarconfig="contig")


def cover_tile(project: Project, image: np.ndarray) -> np.ndarray:
    """A model-size uint8 tile of ``image``: resized in resize mode (what training saw), the centre
    window in tile mode (edge-padded when the image is smaller)."""
    from PIL import Image

    from segkit.engine.components import prediction_for

    h, w = project.model.image_height, project.model.image_width
    if prediction_for(project).mode != "tile":
        resized = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).resize((w, h), Image.Resampling.BILINEAR)
        return np.asarray(resized).reshape(h, w, image.shape[-1])
    padded = np.pad(image, [(0, max(0, h - image.shape[0])), (0, max(0, w - image.shape[1])), (0, 0)], mode="edge")
    top, left = (padded.shape[0] - h) // 2, (padded.shape[1] - w) // 2
    return padded[top:top + h, left:left + w]


def _description(project: Project, work: Path, weights: dict[str, Path], fields: dict[str, Any]) -> Any:
    from bioimageio.spec.model import v0_5 as spec

    m, classes = project.model, project.classes.classes
    return spec.ModelDescr(
        name=_package_name(project), description=f"segkit {m.name} semantic segmentation into "
        + ", ".join(c.name for c in classes), covers=[spec.FileDescr(source=work / "cover.png")],
        documentation=spec.FileDescr(source=work / "README.md"),
        inputs=[_input_tensor(project, work)], outputs=[_output_tensor(project, work)],
        weights=_weights(weights), tags=["segkit", "segmentation"],
        config=spec.Config.model_validate({"segkit": class_config(project)}), **fields)


def _space_axes(project: Project, output: bool) -> list[Any]:
    """``y`` and ``x``: the model's size on the input, the input's size on the output; in µm where known."""
    from bioimageio.spec.model import v0_5 as spec

    mpp = project.instances.microns_per_pixel if project.instances else None
    scale: dict[str, Any] = {"scale": mpp, "unit": "micrometer"} if mpp else {}
    sizes = {"y": project.model.image_height, "x": project.model.image_width}
    if output:
        return [spec.SpaceOutputAxis(id=spec.AxisId(a), size=spec.SizeReference(
            tensor_id=spec.TensorId(INPUT_ID), axis_id=spec.AxisId(a)), **scale) for a in sizes]
    return [spec.SpaceInputAxis(id=spec.AxisId(a), size=size, **scale) for a, size in sizes.items()]


def _input_tensor(project: Project, work: Path) -> Any:
    from bioimageio.spec.model import v0_5 as spec

    channels = _channel_names(project.model.image_channels)
    return spec.InputTensorDescr(
        id=spec.TensorId(INPUT_ID), axes=[spec.BatchAxis(), *_space_axes(project, False),
                                          spec.ChannelAxis(channel_names=channels)],
        test_tensor=spec.FileDescr(source=work / "test_input.npy"),
        sample_tensor=spec.FileDescr(source=work / "sample_input.png"),
        data=spec.IntervalOrRatioDataDescr(type="uint8", range=(0, 255)),
        # the spec appends a cast back to ``data.type`` unless the steps end in one: the network takes float32
        preprocessing=[spec.EnsureDtypeDescr(kwargs=spec.EnsureDtypeKwargs(dtype="float32")),
                       spec.ScaleLinearDescr(kwargs=spec.ScaleLinearKwargs(gain=1 / 255)),
                       spec.EnsureDtypeDescr(kwargs=spec.EnsureDtypeKwargs(dtype="float32"))])


def _output_tensor(project: Project, work: Path) -> Any:
    from bioimageio.spec.model import v0_5 as spec

    channels = [_identifier(c.name, i) for i, c in enumerate(project.classes.classes)]
    return spec.OutputTensorDescr(
        id=spec.TensorId(OUTPUT_ID), axes=[spec.BatchAxis(), *_space_axes(project, True),
                                           spec.ChannelAxis(channel_names=channels)],
        test_tensor=spec.FileDescr(source=work / "test_output.npy"),
        sample_tensor=spec.FileDescr(source=work / "sample_output.tif"),
        data=spec.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)))


def _weights(weights: dict[str, Path]) -> Any:
    import tensorflow as tf
    from bioimageio.spec.model import v0_5 as spec

    bundle = spec.TensorflowSavedModelBundleWeightsDescr(
        source=weights["tensorflow_saved_model_bundle"], tensorflow_version=spec.Version(tf.__version__))
    onnx = None if "onnx" not in weights else spec.OnnxWeightsDescr(
        source=weights["onnx"], opset_version=ONNX_OPSET, parent="tensorflow_saved_model_bundle")
    return spec.WeightsDescr(tensorflow_saved_model_bundle=bundle, onnx=onnx)


def class_config(project: Project) -> dict[str, Any]:
    """``config.segkit`` of rdf.yaml: the class table (and what the pixel size came from)."""
    mpp = project.instances.microns_per_pixel if project.instances else None
    return {"project": project.name, "model": project.model.name,
            "classes": [{"index": i, "name": c.name, "color": list(c.color)}
                        for i, c in enumerate(project.classes.classes)],
            "microns_per_pixel": mpp}


def _channel_names(channels: int) -> list[str]:
    return CHANNEL_NAMES.get(channels, [f"channel{i}" for i in range(channels)])


def _identifier(name: str, index: int) -> str:
    """The class name where it is a Python identifier (what the spec's channel names must be)."""
    import keyword

    return name if name.isidentifier() and not keyword.iskeyword(name) else f"class{index}"


def _package_name(project: Project) -> str:
    # the spec allows letters, digits, spaces and a few marks in a name
    name = "".join(ch if ch.isalnum() or ch in " _-()" else " " for ch in project.name).strip()
    return name if len(name) >= 5 else f"segkit {name}".strip()


def readme(project: Project, weights: dict[str, Path]) -> str:
    """README.md of the package: what goes in and out, the classes, and how the package was checked."""
    m, mpp = project.model, project.instances.microns_per_pixel if project.instances else None
    rows = "\n".join(f"| {i} | {c.name} | {tuple(c.color)} |" for i, c in enumerate(project.classes.classes))
    size = f"{mpp} µm per pixel (`[instances] microns_per_pixel`)" if mpp else \
        "not known: the project sets no `[instances] microns_per_pixel`, so rdf.yaml declares no physical scale"
    return f"""# {project.name}: segkit {m.name}

Semantic segmentation exported by `segkit export --format bioimageio`.

## Input and output
* input `{INPUT_ID}`: uint8 `(batch, y={m.image_height}, x={m.image_width}, channel={m.image_channels})`;
  preprocessing (declared in rdf.yaml): cast to float32 and multiply by 1/255, as in training.
* output `{OUTPUT_ID}`: float32 `(batch, y, x, class)` softmax; the class of a pixel is its argmax.
* tiles are fixed at the model's input size: a client tiles larger images itself.
* pixel size: {size}.
* weights: {", ".join(sorted(weights))}.

| index | class | colour (RGB) |
|---|---|---|
{rows}

## Validation
The package's test input is one tile of the project's data; its test output is what the exported
SavedModel computes for it. `segkit eval` on the project gives the scores on the test split.
"""
