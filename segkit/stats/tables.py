"""Rich tables of a ``DatasetStats``, in the order a dataset is checked: files, shapes, classes, problems."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from segkit.classes import RGB
from segkit.stats.dataset_stats import DatasetStats, SplitStats

#: File names listed per cell before "and N more".
NAMES_SHOWN = 5


def render(stats: DatasetStats, console: Console) -> None:
    """Print every table; the duplicates table says so explicitly when there is nothing to report."""
    colour_masks = any(split.objects is None for split in stats.splits)  # labels that are objects have no colours
    for table in (
        _files_table(stats.splits),
        _shapes_table(stats.splits),
        _classes_table(stats.splits),
        *([_far_colors_table(stats)] if colour_masks else []),
        _duplicates_table(stats),
    ):
        console.print(table)
    if any(split.unknown_classes for split in stats.splits):
        console.print(_unknown_table(stats.splits))
    problems = _problems_table(stats.splits)
    if problems.row_count:
        console.print(problems)


def _files_table(splits: Sequence[SplitStats]) -> Table:
    table = Table(title="Files per split")
    for header in ("split", "images", "masks", "pairs", "images without mask", "masks without image"):
        table.add_column(header, justify="right" if header in ("images", "masks", "pairs") else "left")
    for split in splits:
        table.add_row(
            Text(split.name),
            str(split.images),
            str(split.masks),
            str(split.pairs),
            _names(split.images_without_mask),
            _names(split.masks_without_image),
        )
    return table


def _shapes_table(splits: Sequence[SplitStats]) -> Table:
    table = Table(title="Image sizes and modes (count)")
    for header in ("split", "image sizes", "image modes", "mask sizes"):
        table.add_column(header)
    for split in splits:
        table.add_row(
            Text(split.name),
            ", ".join(f"{w}x{h} ({n})" for (w, h), n in split.image_sizes) or "-",
            ", ".join(f"{mode} ({n})" for mode, n in split.image_modes) or "-",
            ", ".join(f"{w}x{h} ({n})" for (w, h), n in split.mask_sizes) or "-",
        )
    return table


def _classes_table(splits: Sequence[SplitStats]) -> Table:
    """Pixels per class, and objects per class where the labels are objects (GeoJSON)."""
    with_objects = any(split.objects is not None for split in splits)
    table = Table(title="Class pixels per split (fraction of labelled pixels)")
    table.add_column("split")
    table.add_column("class")
    for header in ("pixels", "fraction", "masks containing it", *(["objects"] if with_objects else [])):
        table.add_column(header, justify="right")
    for split in splits:
        objects = dict(split.objects or ())
        for index, count in enumerate(split.classes):
            table.add_row(
                Text(split.name if index == 0 else ""),
                _swatch(count.color) + Text(f" {count.name}"),
                f"{count.pixels:,}",
                f"{count.fraction:.4%}",
                f"{count.images} / {split.masks}",
                *([f"{objects[count.name]:,}" if count.name in objects else "-"] if with_objects else []),
                end_section=index == len(split.classes) - 1,
            )
    return table


def _unknown_table(splits: Sequence[SplitStats]) -> Table:
    table = Table(title="Class names in the labels that are no project class (not counted above)")
    for header in ("split", "name", "objects"):
        table.add_column(header, justify="right" if header == "objects" else "left")
    for split in splits:
        for name, count in split.unknown_classes:
            table.add_row(Text(split.name), Text(name), f"{count:,}")
    return table


def _far_colors_table(stats: DatasetStats) -> Table:
    table = Table(title=f"Mask colours farther than {stats.table.tolerance:g} from every class colour")
    table.add_column("split")
    table.add_column("pixels", justify="right")
    table.add_column("share of mask pixels", justify="right")
    table.add_column("most frequent (pixels)")
    for split in stats.splits:
        total = split.labelled_pixels + split.ignored_pixels
        colors = Text(", ").join(_swatch(color) + Text(f" {color} ({n:,})") for color, n in split.far_colors)
        share = f"{split.far_pixels / total:.3%}" if total else "-"
        table.add_row(Text(split.name), f"{split.far_pixels:,}", share, colors or Text("-"))
    return table


def _duplicates_table(stats: DatasetStats) -> Table:
    """One row per cluster of near-duplicates: its size, splits, first members and largest distance."""
    leaks = sum(cluster.leak for cluster in stats.duplicates)
    images = sum(cluster.size for cluster in stats.duplicates)
    title = (
        f"Near-duplicates at distance <= {stats.duplicate_threshold:g} "
        f"({len(stats.duplicates)} clusters of {images} images, {leaks} across splits)"
    )
    table = Table(title=title)
    for header in ("images", "splits", "members", "max distance", "kind"):
        table.add_column(header, justify="right" if header in ("images", "max distance") else "left")
    for cluster in stats.duplicates:
        kind = Text("LEAK across splits", style="bold red") if cluster.leak else Text("duplicates in split")
        splits = Text(", ".join(f"{split} {n}" for split, n in cluster.splits.items()))
        # the splits column counts them; a leak also says which file sits in which split
        members = _names([f"{split}/{name}" if cluster.leak else name for split, name in cluster.members])
        table.add_row(str(cluster.size), splits, members, f"{cluster.max_distance:.4f}", kind)
    if not stats.duplicates:
        table.add_row("", "", "none found", "", "")
    return table


def _problems_table(splits: Sequence[SplitStats]) -> Table:
    table = Table(title="Problems (files left out of the statistics)")
    for header in ("split", "file", "reason"):
        table.add_column(header)
    for split in splits:
        for problem in split.problems:
            table.add_row(Text(split.name), Text(problem.file), Text(problem.reason))
    return table


def _swatch(color: RGB) -> Text:
    """A coloured block; framed in gray so black and white classes stay visible on any terminal theme."""
    r, g, b = color
    return Text("[", style="grey50") + Text("██", style=f"rgb({r},{g},{b})") + Text("]", style="grey50")


def _names(names: Sequence[str]) -> Text:
    if not names:
        return Text("-")
    shown = ", ".join(names[:NAMES_SHOWN])
    more = len(names) - NAMES_SHOWN
    return Text(f"{shown} and {more} more" if more > 0 else shown)
