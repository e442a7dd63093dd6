"""``segkit infer``: a colourised mask at each image's own size, and a blended overlay."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from segkit.data.images import read_image, write_png
from segkit.data.pairing import list_images
from segkit.data.resize import blend
from segkit.engine.components import prediction_for
from segkit.engine.evaluate import load_best_model
from segkit.engine.predict import segment
from segkit.engine.runtime import import_tensorflow
from segkit.errors import DataError, ProjectError
from segkit.project import Project


@dataclass(frozen=True)
class InferResult:
    count: int
    masks: Path
    overlays: Path


def overlay_folder(output: Path) -> Path:
    return output.with_name(f"{output.name}_overlay")


def infer(project: Project) -> InferResult:
    """Segment every image of ``[infer] images`` into ``[infer] output`` and ``<output>_overlay``."""
    folder = project.infer.images
    if folder is None:
        raise ProjectError(str(project.source), "infer.images", "is not set",
                           "add it to [infer] or pass --set infer.images=FOLDER")
    files = list_images(folder)
    if not files:
        raise DataError(f"{folder}: no images found (looked for .png .jpg .jpeg .tif .tiff .bmp)")
    import_tensorflow()
    model = load_best_model(project)
    output, overlays = project.infer.output, overlay_folder(project.infer.output)
    how = prediction_for(project)
    for start in range(0, len(files), how.batch_size):
        chunk = files[start : start + how.batch_size]
        images = [read_image(path, project.model.image_channels) for path in chunk]
        for path, image, mask in zip(chunk, images, segment(model, images, how)):
            colours = project.classes.colorize(mask)
            write_png(output / f"{path.stem}.png", colours)
            write_png(overlays / f"{path.stem}.png", blend(image, colours, mask > 0))
    return InferResult(len(files), output, overlays)
