"""Per-split dataset statistics: files, pairing, sizes and modes, class pixels, off-palette colours.

Every image is opened once (header plus a small decode for its near-duplicate fingerprint) and every
mask once; with ``workers > 1`` that per-file work runs in a process pool. Problems with single files
are recorded, never raised, so one broken export does not hide the statistics of the rest.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import zip_longest
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from segkit.classes import IGNORE_INDEX, RGB, ClassTable
from segkit.data.folders import SplitFolders
from segkit.data.images import read_mask_source, read_preview
from segkit.data.names import shown_path
from segkit.data.pairing import MASKS, FileKind, check_stems, scan_image_folder
from segkit.errors import DataError
from segkit.specs import CountedSource
from segkit.stats.dataset_stats import ClassCount, DatasetStats, Problem, Sample
from segkit.stats.dataset_stats import SplitStats
from segkit.stats.near_duplicates import DEFAULT_THRESHOLD, ImageFingerprint
from segkit.stats.near_duplicates import find_near_duplicates, fingerprint
from segkit.text import visible

#: Short side of the preview decoded for the fingerprint; JPEGs decode directly at about this scale.
PREVIEW_SIDE = 64
#: How many off-palette colours each split lists.
TOP_FAR_COLORS = 5
#: Image/mask pairs kept for the sample montage.
SAMPLE_COUNT = 6

_Tallied = TypeVar("_Tallied", tuple[int, int], str)


@dataclass(frozen=True)
class ImageScan:
    """What one image file yields: header size and mode, and its near-duplicate fingerprint."""

    path: Path
    size: tuple[int, int]
    mode: str
    fingerprint: np.ndarray


@dataclass(frozen=True)
class MaskScan:
    """What one mask yields: size, pixels per class index (256 bins), off-palette colour histogram."""

    path: Path
    size: tuple[int, int]
    index_pixels: np.ndarray
    far_colors: np.ndarray
    far_counts: np.ndarray
    #: objects per class index, where the labels are objects (a CountedSource's); None for colour masks
    objects: np.ndarray | None = None
    #: label names matching no class, with their object counts
    unknown: tuple[tuple[str, int], ...] = ()
    #: labels that could not be used at all
    bad: int = 0


@dataclass(frozen=True)
class Unreadable:
    """A file the scan could not decode, and the one-line reason."""

    path: Path
    reason: str


def scan_image(path: Path) -> ImageScan | Unreadable:
    """Module level so a process pool can pickle it."""
    try:
        size, mode, gray = read_preview(path, PREVIEW_SIDE, channels=1)
    except (DataError, Image.DecompressionBombError) as exc:
        return Unreadable(path, _reason(path, exc))
    return ImageScan(path, size, mode, fingerprint(gray))


def scan_mask(path: Path, table: ClassTable) -> MaskScan | Unreadable:
    """Module level so a process pool can pickle it (with ``functools.partial`` for the table)."""
    try:
        source = read_mask_source(path, table)
    except (DataError, Image.DecompressionBombError) as exc:
        return Unreadable(path, _reason(path, exc))
    size = (source.shape[1], source.shape[0])
    if source.ndim == 2:  # stored as class indices: nothing can be off-palette
        empty = np.zeros(0, dtype=np.int64)
        return MaskScan(path, size, np.bincount(source.ravel(), minlength=256), empty, empty)
    flat = source.reshape(-1, 3).astype(np.int32)
    # Same packing as ClassTable.decode: a mask holds few colours, so work on the unique ones only.
    colors, counts = np.unique((flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2], return_counts=True)
    colors_rgb = _unpack(colors)
    indices, _ = table.decode(colors_rgb[:, None, :])
    index_pixels = np.bincount(indices[:, 0], weights=counts, minlength=256).astype(np.int64)
    far = _far_from_palette(colors_rgb, table)
    return MaskScan(path, size, index_pixels, colors[far].astype(np.int64), counts[far].astype(np.int64))


def collect_stats(
    splits: Mapping[str, SplitFolders],
    table: ClassTable,
    *,
    workers: int = 2,
    duplicate_threshold: float | None = None,
    labels: CountedSource | None = None,
) -> DatasetStats:
    """Read every image and mask of ``splits`` (by split name) once and summarise them; see ``SplitStats``.

    ``workers > 1`` spreads the per-file work over that many processes. Near-duplicates are clusters of
    images joined by fingerprint distance ``<= duplicate_threshold`` (default ``DEFAULT_THRESHOLD``).
    ``labels``, a dataset whose masks folders hold no colour masks, counts them in this process
    (its objects too); there is no sample montage then (the charts draw colour masks).
    """
    kind = labels.label_kind() if labels is not None else MASKS
    listings = [_list_split(name, folders, kind) for name, folders in splits.items()]
    # dict.fromkeys: splits that share a folder still read each file once
    image_paths = list(dict.fromkeys(path for listing in listings for path in listing.images))
    mask_paths = list(dict.fromkeys(path for listing in listings for path in listing.masks))
    if labels is None:
        image_scans, mask_scans = _scan_files(image_paths, mask_paths, table, workers)
    else:
        image_scans, mask_scans = _scan_files(image_paths, [], table, workers)[0], _scan_counted(labels, listings)
    threshold = DEFAULT_THRESHOLD if duplicate_threshold is None else duplicate_threshold
    prints = [
        ImageFingerprint(shown_path(path.name), listing.name, scan.fingerprint)
        for listing in listings
        for path in listing.images
        if isinstance(scan := image_scans[path], ImageScan)
    ]
    return DatasetStats(
        table=table,
        splits=tuple(_split_stats(listing, image_scans, mask_scans, table) for listing in listings),
        duplicates=tuple(find_near_duplicates(prints, threshold)),
        duplicate_threshold=threshold,
        samples=_pick_samples(listings, image_scans, mask_scans) if labels is None else (),
    )


@dataclass(frozen=True)
class _Listing:
    name: str
    images: list[Path]
    masks: list[Path]
    problems: list[Problem]
    #: the stem a mask pairs by (``a.geojson.gz`` pairs with ``a.png``)
    mask_stem: Callable[[Path], str] = MASKS.stem


def _list_split(name: str, split: SplitFolders, kind: FileKind = MASKS) -> _Listing:
    """The images folder's image files and the masks folder's files of ``kind``; a folder that
    cannot be listed is a problem and counts as empty."""
    found: list[list[Path]] = []
    problems: list[Problem] = []
    for folder, named, stem in ((split.images, None, MASKS.stem), (split.masks, kind.named, kind.stem)):
        try:
            listing = scan_image_folder(folder, named=named)
            check_stems(listing, stem)
        except DataError as exc:
            found.append([])
            problems.append(Problem(shown_path(folder), _reason(folder, exc)))
            continue
        found.append(listing.files)
        problems += [Problem(_short_path(entry.path), entry.problem) for entry in listing.rejected]
    return _Listing(name, found[0], found[1], problems, kind.stem)


def _scan_counted(labels: CountedSource, listings: list[_Listing]) -> dict[Path, MaskScan | Unreadable]:
    """Each label file counted by the dataset on its image; one without an image cannot be."""
    scans: dict[Path, MaskScan | Unreadable] = {}
    for listing in listings:
        images = {path.stem: path for path in listing.images}
        for path in listing.masks:
            image = images.get(listing.mask_stem(path))
            if path in scans:
                continue
            if image is None:
                scans[path] = Unreadable(path, "has no image of its stem to count its labels on")
                continue
            try:
                counts = labels.label_counts(image, path)
            except DataError as exc:
                scans[path] = Unreadable(path, _reason(path, exc))
                continue
            empty = np.zeros(0, dtype=np.int64)
            scans[path] = MaskScan(path, counts.size, np.asarray(counts.pixels, np.int64), empty, empty,
                                   np.asarray(counts.objects, np.int64), tuple(sorted(counts.unknown.items())),
                                   counts.bad)
    return scans


def _scan_files(
    image_paths: list[Path], mask_paths: list[Path], table: ClassTable, workers: int
) -> tuple[dict[Path, ImageScan | Unreadable], dict[Path, MaskScan | Unreadable]]:
    """Scan every file once, in ``workers`` processes when more than one (one pool for both kinds)."""
    scan_table_mask = partial(scan_mask, table=table)
    if workers <= 1 or len(image_paths) + len(mask_paths) < 2:
        return {p: scan_image(p) for p in image_paths}, {p: scan_table_mask(p) for p in mask_paths}
    # spawn, not fork: the caller (the CLI) may hold threads or a GPU runtime that must not be forked.
    context = multiprocessing.get_context("spawn")
    chunk = max(1, (len(image_paths) + len(mask_paths)) // (workers * 16))
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        image_scans = pool.map(scan_image, image_paths, chunksize=chunk)
        mask_scans = pool.map(scan_table_mask, mask_paths, chunksize=chunk)
        return dict(zip(image_paths, image_scans)), dict(zip(mask_paths, mask_scans))


def _split_stats(
    listing: _Listing,
    image_scans: dict[Path, ImageScan | Unreadable],
    mask_scans: dict[Path, MaskScan | Unreadable],
    table: ClassTable,
) -> SplitStats:
    images = [image_scans[path] for path in listing.images]
    masks = [mask_scans[path] for path in listing.masks]
    image_stems = {path.stem for path in listing.images}
    mask_stems = {listing.mask_stem(path) for path in listing.masks}
    read_images = [scan for scan in images if isinstance(scan, ImageScan)]
    read_masks = [scan for scan in masks if isinstance(scan, MaskScan)]
    index_pixels = sum((scan.index_pixels for scan in read_masks), np.zeros(256, dtype=np.int64))
    far_pixels, far_colors = _far_summary(read_masks)
    return SplitStats(
        name=listing.name,
        images=len(images),
        masks=len(masks),
        pairs=len(image_stems & mask_stems),
        images_without_mask=tuple(shown_path(p.name) for p in listing.images if p.stem not in mask_stems),
        masks_without_image=tuple(shown_path(p.name) for p in listing.masks if listing.mask_stem(p) not in image_stems),
        image_sizes=_tally(scan.size for scan in read_images),
        image_modes=_tally(scan.mode for scan in read_images),
        mask_sizes=_tally(scan.size for scan in read_masks),
        classes=_class_counts(index_pixels, read_masks, table),
        labelled_pixels=int(index_pixels[: table.num_classes].sum()),
        ignored_pixels=int(index_pixels[IGNORE_INDEX]),
        far_pixels=far_pixels,
        far_colors=far_colors,
        problems=tuple(listing.problems + _file_problems([*images, *masks], read_images, read_masks,
                                                          listing.mask_stem)),
        objects=_objects(read_masks, table),
        unknown_classes=_unknown(read_masks),
    )


def _objects(masks: list[MaskScan], table: ClassTable) -> tuple[tuple[str, int], ...] | None:
    """Objects per class name over the split, where the labels are objects; None for colour masks."""
    counted = [scan.objects for scan in masks if scan.objects is not None]
    if not counted:
        return None
    total = sum(counted, np.zeros(table.num_classes, np.int64))
    return tuple((info.name, int(total[index])) for index, info in enumerate(table.classes))


def _unknown(masks: list[MaskScan]) -> tuple[tuple[str, int], ...]:
    """Label names matching no class, with their objects over the split, most frequent first."""
    counts: Counter[str] = Counter()
    for scan in masks:
        counts.update(dict(scan.unknown))
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _class_counts(
    index_pixels: np.ndarray, masks: list[MaskScan], table: ClassTable
) -> tuple[ClassCount, ...]:
    labelled = int(index_pixels[: table.num_classes].sum())
    return tuple(
        ClassCount(
            name=info.name,
            color=info.color,
            pixels=int(index_pixels[index]),
            fraction=int(index_pixels[index]) / labelled if labelled else 0.0,
            images=sum(1 for scan in masks if scan.index_pixels[index] > 0),
        )
        for index, info in enumerate(table.classes)
    )


def _far_summary(masks: list[MaskScan]) -> tuple[int, tuple[tuple[RGB, int], ...]]:
    """Total off-palette pixels and the ``TOP_FAR_COLORS`` most frequent such colours (ties: lower colour)."""
    none = np.zeros(0, np.int64)
    colors = np.concatenate([none, *(scan.far_colors for scan in masks)])
    counts = np.concatenate([none, *(scan.far_counts for scan in masks)])
    unique, inverse = np.unique(colors, return_inverse=True)
    totals = np.bincount(inverse.ravel(), weights=counts, minlength=len(unique)).astype(np.int64)
    top = np.lexsort((unique, -totals))[:TOP_FAR_COLORS]
    rgb = _unpack(unique[top])
    return int(counts.sum()), tuple((_rgb(row), int(totals[i])) for row, i in zip(rgb, top))


def _file_problems(
    scans: list[ImageScan | MaskScan | Unreadable], images: list[ImageScan], masks: list[MaskScan],
    mask_stem: Callable[[Path], str] = MASKS.stem,
) -> list[Problem]:
    """Unreadable files, label files with unusable labels, then images whose mask has another size
    (named ``folder/file``, as both may)."""
    unreadable = [scan for scan in scans if isinstance(scan, Unreadable)]
    problems = [Problem(_short_path(scan.path), scan.reason) for scan in unreadable]
    problems += [Problem(_short_path(scan.path), f"{scan.bad} label(s) cannot be used and were not counted "
                         "(segkit train names each)") for scan in masks if scan.bad]
    mask_sizes = {mask_stem(scan.path): scan.size for scan in masks}
    for scan in images:
        mask_size = mask_sizes.get(scan.path.stem)
        if mask_size and mask_size != scan.size:
            reason = f"image is {_wxh(scan.size)} but its mask is {_wxh(mask_size)}"
            problems.append(Problem(_short_path(scan.path), reason))
    return problems


def _pick_samples(
    listings: list[_Listing],
    image_scans: dict[Path, ImageScan | Unreadable],
    mask_scans: dict[Path, MaskScan | Unreadable],
) -> tuple[Sample, ...]:
    """Up to ``SAMPLE_COUNT`` readable pairs, spread evenly over the splits and over each split's files."""
    per_split: list[list[Sample]] = []
    for listing in listings:
        masks = {p.stem: p for p in listing.masks if isinstance(mask_scans[p], MaskScan)}
        pairs = [
            Sample(listing.name, p, masks[p.stem])
            for p in listing.images
            if p.stem in masks and isinstance(image_scans[p], ImageScan)
        ]
        step = max(1, len(pairs) // SAMPLE_COUNT)
        per_split.append(pairs[::step])
    interleaved = [sample for row in zip_longest(*per_split) for sample in row if sample is not None]
    return tuple(interleaved[:SAMPLE_COUNT])


def _far_from_palette(colors_rgb: np.ndarray, table: ClassTable) -> np.ndarray:
    """Which colours lie farther than ``table.tolerance`` from every class colour and the ignore colour.

    ``ClassTable.decode`` only returns the total, and the report needs the colours themselves.
    """
    references = [c.color for c in table.classes]
    if table.ignore_color is not None:
        references.append(table.ignore_color)
    distances = np.linalg.norm(colors_rgb[:, None, :] - np.array(references)[None, :, :], axis=2)
    far: np.ndarray = distances.min(axis=1) > table.tolerance
    return far


def _unpack(packed: np.ndarray) -> np.ndarray:
    """Inverse of the ``(r << 16) | (g << 8) | b`` packing: ``(N,)`` -> ``(N, 3)`` int64."""
    channels = [(packed >> 16) & 255, (packed >> 8) & 255, packed & 255]
    unpacked: np.ndarray = np.stack(channels, axis=1).astype(np.int64)
    return unpacked


def _rgb(row: np.ndarray) -> RGB:
    return (int(row[0]), int(row[1]), int(row[2]))


def _tally(values: Iterable[_Tallied]) -> tuple[tuple[_Tallied, int], ...]:
    """Distinct values with counts, most frequent first, then by value for a stable order."""
    counts = Counter(values)
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _wxh(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _short_path(path: Path) -> str:
    return shown_path(f"{path.parent.name}/{path.name}")


def _reason(path: Path, exc: Exception) -> str:
    """The error as one line, without the path the report already shows next to it.

    Names are made printable (non-UTF-8 bytes escaped): rich and JSON readers reject them raw.
    """
    message = visible(" ".join(str(exc).split()))
    prefix = f"{shown_path(path)}: "
    return message[len(prefix) :] if message.startswith(prefix) else message
