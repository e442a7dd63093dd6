"""``segkit infer``: a colourised mask at each image's own size, and a blended overlay."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segkit.data.images import read_image, write_png
from segkit.data.resize import blend
from segkit.engine.best_model import load_best_model
from segkit.engine.components import prediction_for
from segkit.engine.infer_plan import InferPlan, plan_infer, record
from segkit.engine.predict import segment
from segkit.engine.runtime import import_tensorflow
from segkit.project import Project


@dataclass(frozen=True)
class InferResult:
    count: int
    masks: Path
    overlays: Path
    replaced: list[Path]


def infer(project: Project, plan: InferPlan | None = None) -> InferResult:
    """Segment the images of ``plan`` (default: :func:`plan_infer` of the project, ``[infer] images``
    into ``[infer] output``) into its mask folder and the overlay folder beside it."""
    plan = plan or plan_infer(project)
    files, output, overlays = plan.images, plan.masks, plan.overlays
    import_tensorflow()
    model = load_best_model(project)
    record(plan)
    how = prediction_for(project)
    chunks = [files[start : start + how.batch_size] for start in range(0, len(files), how.batch_size)]
    channels = project.model.image_channels

    def write(chunk: list[Path], images: list[np.ndarray], masks: list[np.ndarray]) -> None:
        for path, image, mask in zip(chunk, images, masks):
            colours = project.classes.colorize(mask)
            write_png(output / f"{path.stem}.png", colours)
            # overlays are for looking at: fast compression, as infer is bound by PNG encoding here
            write_png(overlays / f"{path.stem}.png", blend(image, colours, mask > 0), compress_level=1)

    _overlapped(chunks, lambda chunk: [read_image(path, channels) for path in chunk],
                lambda images: segment(model, images, how), write)
    return InferResult(len(files), output, overlays, plan.replaced)


def _overlapped(chunks: list[list[Path]], read: Callable[[list[Path]], list[np.ndarray]],
                predict: Callable[[list[np.ndarray]], list[np.ndarray]],
                write: Callable[[list[Path], list[np.ndarray], list[np.ndarray]], None]) -> None:
    """``write(chunk, images, predict(images))`` for each chunk, reading the next chunk and writing
    the last ones while the model works: PNG encoding costs as much as the model here, and Pillow
    releases the GIL while it works. At most one chunk ahead and two behind are held in memory."""
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
