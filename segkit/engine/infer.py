"""``segkit infer``: a colourised mask at each image's own size, a blended overlay, and with
``[instances]`` the nuclei as objects (:mod:`segkit.engine.infer_objects`); slides go through the
slide engine (:mod:`segkit.engine.infer_slides`)."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from segkit.data.images import read_image, write_png
from segkit.data.resize import blend
from segkit.cv.ensemble import load_run_model
from segkit.engine.components import prediction_for
from segkit.engine.infer_objects import NucleusWriter
from segkit.engine.infer_plan import InferPlan, plan_infer, record
from segkit.engine.infer_slides import SlideProgress, SlidesDone, interrupts_raised, segment_slides
from segkit.engine.predict import probabilities, segment
from segkit.engine.runtime import import_tensorflow
from segkit.project import Project

#: what the model gives the writer per image: class indices, or the softmax when objects are wanted
Predicted = TypeVar("Predicted")


@dataclass(frozen=True)
class InferResult:
    count: int
    masks: Path
    overlays: Path
    replaced: list[Path]
    #: the objects folder and the nuclei written there; None and 0 without ``[instances]``
    objects: Path | None = None
    nuclei: int = 0
    #: the slides' rows of slides.csv and counts; None when the call had no slides
    slides: SlidesDone | None = None


def infer(project: Project, plan: InferPlan | None = None, slide_progress: SlideProgress | None = None,
          folds: Sequence[int] | None = None) -> InferResult:
    """Segment the images of ``plan`` (default: :func:`plan_infer` of the project, ``[infer] images``
    into ``[infer] output``) into its mask folder, the overlay folder beside it and, where the plan
    has objects, the objects folder; then its slides into the mask folder; with ``folds``, by the
    ensemble of those folds' models. The model loads only when something is left to segment (a
    rerun after a finished call loads none). SIGINT and SIGTERM raise
    :class:`~segkit.engine.infer_slides.InferInterrupted`."""
    plan = plan or plan_infer(project)
    model = None
    if plan.images or any(not slide.done for slide in plan.slides):
        import_tensorflow()
        model = load_run_model(project, folds)
    record(plan)
    with interrupts_raised():
        images = _infer_images(project, plan, model) if plan.images else InferResult(0, plan.masks, plan.overlays,
                                                                                      plan.replaced)
        if not plan.slides:
            return images
        return dataclasses.replace(images, slides=segment_slides(project, plan, model, slide_progress))


def _infer_images(project: Project, plan: InferPlan, model: Any) -> InferResult:
    """The images of ``plan``: masks, overlays and, where the plan has objects, their nuclei."""
    files, output, overlays = plan.images, plan.masks, plan.overlays
    how = prediction_for(project)
    chunks = [files[start : start + how.batch_size] for start in range(0, len(files), how.batch_size)]
    channels = project.model.image_channels

    def write_mask(path: Path, image: np.ndarray, mask: np.ndarray) -> None:
        colours = project.classes.colorize(mask)
        write_png(output / f"{path.stem}.png", colours)
        # overlays are for looking at: fast compression, as infer is bound by PNG encoding here
        write_png(overlays / f"{path.stem}.png", blend(image, colours, mask > 0), compress_level=1)

    def read(chunk: list[Path]) -> list[np.ndarray]:
        return [read_image(path, channels) for path in chunk]

    if plan.objects is None:
        # only the class indices leave the model: a chunk's softmax would cost K float32s a pixel
        _overlapped(chunks, read, lambda images: segment(model, images, how), _each(write_mask))
        return InferResult(len(files), output, overlays, plan.replaced)
    nuclei = NucleusWriter(plan.objects, project.classes)

    def write_objects(path: Path, image: np.ndarray, softmax: np.ndarray) -> None:
        write_mask(path, image, softmax.argmax(axis=2).astype(np.uint8))  # what segment() gives
        nuclei.write(path, image, softmax)

    _overlapped(chunks, read, lambda images: probabilities(model, images, how), _each(write_objects))
    return InferResult(len(files), output, overlays, plan.replaced, plan.objects.folder, nuclei.finish(files))


def _each(write: Callable[[Path, np.ndarray, Predicted], None]
          ) -> Callable[[list[Path], list[np.ndarray], list[Predicted]], None]:
    """``write`` for each image of a chunk."""
    def chunk_writer(chunk: list[Path], images: list[np.ndarray], predicted: list[Predicted]) -> None:
        for path, image, prediction in zip(chunk, images, predicted):
            write(path, image, prediction)
    return chunk_writer


def _overlapped(chunks: list[list[Path]], read: Callable[[list[Path]], list[np.ndarray]],
                predict: Callable[[list[np.ndarray]], list[Predicted]],
                write: Callable[[list[Path], list[np.ndarray], list[Predicted]], None]) -> None:
    """``write(chunk, images, predict(images))`` for each chunk, reading the next chunk and writing
    the last ones while the model works: PNG encoding (and finding nuclei) costs as much as the model
    here, and Pillow (like much of NumPy and scikit-image) releases the GIL while it works. At most one chunk ahead and two
    behind are held in memory."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        next_read = pool.submit(read, chunks[0])
        writes: deque[Future[None]] = deque()
        for n, chunk in enumerate(chunks):
            images = next_read.result()
            if n + 1 < len(chunks):
                next_read = pool.submit(read, chunks[n + 1])
            writes.append(pool.submit(write, chunk, images, predict(images)))
            while len(writes) > 2:
                writes.popleft().result()
        for pending in writes:
            pending.result()
