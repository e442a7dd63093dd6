"""PNG charts of a ``DatasetStats``: files per split, class balance per split, a sample montage.

Every figure is drawn on its own Agg canvas and pyplot is never imported: charts render on servers
and in CI without a display, and importing ``segkit.stats`` does not switch the process-wide
backend (``matplotlib.use`` after pyplot is loaded would close a notebook user's open figures).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from segkit.data.images import read_image, read_mask
from segkit.data.names import shown_path
from segkit.errors import DataError
from segkit.stats.dataset_stats import DatasetStats, Sample

if TYPE_CHECKING:  # matplotlib itself is imported only when drawing: ~0.3 s that stats workers skip
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Long side, in pixels, each sample is shrunk to in the montage (keeps the PNG small for any tile size).
MONTAGE_TILE = 256
_DPI = 100


def write_charts(stats: DatasetStats, folder: Path) -> list[Path]:
    """Write ``images_per_split.png``, ``class_fractions.png`` and (when pairs exist) ``samples.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [
        _save(_images_per_split(stats), folder / "images_per_split.png"),
        _save(_class_fractions(stats), folder / "class_fractions.png"),
    ]
    if stats.samples:
        written.append(_save(_samples(stats), folder / "samples.png"))
    return written


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(figure)  # attaches itself to the figure; no global backend state involved
    return figure


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=_DPI)
    return path


def _images_per_split(stats: DatasetStats) -> Figure:
    names = [split.name for split in stats.splits]
    positions = np.arange(len(names))
    figure = _figure(max(4.0, 1.6 * len(names) + 2), 4)
    axes = figure.subplots()
    for offset, (label, counts) in zip(
        (-0.2, 0.2),
        (("images", [s.images for s in stats.splits]), ("masks", [s.masks for s in stats.splits])),
    ):
        bars = axes.bar(positions + offset, counts, width=0.4, label=label)
        axes.bar_label(bars, padding=2)
    axes.set_xticks(positions, names)
    axes.set_ylabel("files")
    axes.set_title("Images and masks per split")
    axes.margins(y=0.15)  # room for the count above the tallest bar
    axes.legend()
    figure.tight_layout()
    return figure


def _class_fractions(stats: DatasetStats) -> Figure:
    """Grouped bars on a log axis: background is usually ~98 %, and the classes that matter ~1 %."""
    table = stats.table
    positions = np.arange(len(stats.splits))
    width = 0.8 / max(1, table.num_classes)
    figure = _figure(max(5.0, 1.2 * len(stats.splits) * table.num_classes + 2), 4.5)
    axes = figure.subplots()
    _prepare_log_axes(axes, [c.fraction * 100 for split in stats.splits for c in split.classes])
    for index, info in enumerate(table.classes):
        fractions = [split.classes[index].fraction * 100 for split in stats.splits]
        offsets = positions - 0.4 + width * (index + 0.5)
        # The outline is what keeps a black (background) bar visible against dark neighbours.
        bars = axes.bar(
            offsets, fractions, width=width, color=np.array(info.color) / 255,
            edgecolor="0.45", linewidth=1.2, label=info.name,
        )
        axes.bar_label(bars, labels=[f"{f:.2f}%" if f > 0 else "" for f in fractions], padding=2, fontsize=8)
    axes.set_xticks(positions, [split.name for split in stats.splits])
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    return figure


def _prepare_log_axes(axes: Axes, percentages: list[float]) -> None:
    """Fixed limits before any bar is drawn: bars then rise from the bottom edge, and an all-zero
    split (no masks yet) gives an empty chart instead of matplotlib's "cannot be log-scaled" warning."""
    positive = [p for p in percentages if p > 0]
    axes.set_yscale("log", nonpositive="clip")
    axes.set_ylim(min(positive, default=1.0) / 3, 300)  # 300: room above 100 % for the labels
    axes.set_ylabel("% of labelled pixels (log scale)")
    axes.set_title("Class pixel fractions per split")


def _samples(stats: DatasetStats) -> Figure:
    """Images in the top row, their masks in the class colours below."""
    count = len(stats.samples)
    figure = _figure(2.4 * count, 5.0)
    grid = figure.subplots(2, count, squeeze=False)
    for column, sample in enumerate(stats.samples):
        image, mask = _sample_arrays(sample, stats)
        grid[0, column].imshow(image)
        grid[0, column].set_title(f"{sample.split}\n{_short(sample.image.name)}", fontsize=8)
        grid[1, column].imshow(mask, interpolation="nearest")
    for axes in grid.ravel():
        axes.set_axis_off()
    figure.tight_layout()
    return figure


def _sample_arrays(sample: Sample, stats: DatasetStats) -> tuple[np.ndarray, np.ndarray]:
    """Image and colourised mask subsampled to about ``MONTAGE_TILE``; gray tiles if either is unreadable."""
    try:
        image = read_image(sample.image)
        indices, _ = read_mask(sample.mask, stats.table)
    except DataError:  # the file changed since stats were collected: show a gap, not a crash
        blank = np.full((MONTAGE_TILE, MONTAGE_TILE, 3), 128, dtype=np.uint8)
        return blank, blank
    step = max(1, max(image.shape[:2]) // MONTAGE_TILE)
    return image[::step, ::step], stats.table.colorize(indices)[::step, ::step]


def _short(name: str, limit: int = 24) -> str:
    name = shown_path(name)  # matplotlib cannot draw the lone surrogates of a non-UTF-8 file name
    return name if len(name) <= limit else name[: limit - 1] + "…"
