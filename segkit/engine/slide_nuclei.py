"""The nuclei of a whole slide, each counted once across seams (issue 27, items 3 and 4).

:class:`NucleusSink` takes the band's finished level rows (:mod:`segkit.engine.slide_sinks`) and
runs the project's instancer on bounded *windows* of them: horizontal strips of ``strip`` level
rows, cut into ``chunk`` columns, each with a context ``margin`` on every side. A nucleus is kept
by the one window whose *core* (the window without its margins; the slide's edges own the margins
there) holds its centroid, decided in exact integer arithmetic, so a nucleus on a seam (of the
model's tiles or of the windows) is written once, with the outline the instancer gives it on the
whole picture as long as it fits in the margin. A window one of whose nuclei touches its edge
inside the slide is redone with its margin doubled (:data:`GROWTH`), so an object up to twice the
margin is still seen whole by every window that holds part of it; only larger ones (clumps of
touching nuclei that no instancer split) are cut, and counted (:attr:`NucleusSink.cut`). Since the
softmax is blended before the instancer sees it, tile seams are no seams for the instancer at all;
only the windows' are, and the margin takes care of those.

Output, streamed: each strip's nuclei go to part files (feature lines, a table part) in a hidden
work folder; :meth:`NucleusSink.finish` assembles them, part by part, into the QuPath GeoJSON
detections and the nucleus table (Parquet row groups, or CSV), each renamed into place only when
whole. Coordinates are level-0 pixels (level pixel ``(r, c)`` covers ``x in [c * d, (c + 1) * d)``
for the level's downsample ``d``); the table's µm sizes use the level's pixel size.

Memory: the rows of one strip and its grown margins, ``(strip + 2 x GROWTH x margin + band) x
level width x (K x 4 + 3)`` bytes, and one window's objects; it depends on the tile size and the slide's
width, never on its height or on the number of nuclei.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segkit.classes import ClassTable
from segkit.durable import replace_atomically
from segkit.slides.grid import Tile
from segkit.specs import Instances

#: the instancer a project builds: one window's softmax (H, W, K) and RGB (H, W, 3) -> Instances
Instancer = Callable[[np.ndarray, np.ndarray], object]
#: the least context margin in level pixels, whatever the tile
MIN_MARGIN = 16
#: a window whose nuclei touch its edges is redone with a margin this many times as wide (at most)
GROWTH = 2
#: what save_state writes
STATE_JSON, STATE_ARRAYS = "nuclei.json", "nuclei.npz"


@dataclass(frozen=True)
class NucleusPlan:
    """How one slide's nuclei are found and where they go."""

    instancer: Instancer
    instancer_name: str
    classes: ClassTable
    slide_name: str
    level_size: tuple[int, int]
    downsample: float
    microns_per_pixel: float  # of the level's pixels
    margin: int
    strip: int
    chunk: int
    detections: Path
    table: Path
    compress_geojson: bool
    work: Path


def window_sides(tiles: list[Tile]) -> tuple[int, int, int]:
    """``(margin, strip, chunk)`` in level pixels for tiles of this read size: the margin a quarter
    of the model's input (64 px of a 256 px input: 32 µm at 0.5 µm per pixel, more than a nucleus;
    the tiles themselves overlap by a quarter), a strip two inputs tall and a chunk four wide, so
    that the margins add ~40% to the instancer's work (a window that grows is redone)."""
    height = max((t.read_height for t in tiles), default=1)
    width = max((t.read_width for t in tiles), default=1)
    return max(MIN_MARGIN, math.ceil(max(height, width) / 4)), 2 * height, 4 * width


class NucleusSink:
    """Finds, keeps once and streams out the nuclei of the rows it takes (a :class:`RowSink`)."""

    def __init__(self, plan: NucleusPlan) -> None:
        self.plan = plan
        self.width, self.height = plan.level_size
        self._chunks: list[tuple[int, np.ndarray, np.ndarray]] = []
        self._next_core = 0  # first level row of the next strip's core
        self._known = 0  # rows above this were taken (or skipped by the band as glass)
        self._next_id = 1
        self._parts: list[str] = []
        self.per_class: Counter[str] = Counter()
        #: nuclei kept that touch a window's edge inside the slide even with GROWTH margins, so cut there
        #: (a clump of touching nuclei that connected components keeps as one object; watershed splits them)
        self.cut = 0

    @property
    def count(self) -> int:
        """Nuclei kept so far."""
        return self._next_id - 1

    def take(self, top: int, softmax: np.ndarray, pixels: np.ndarray) -> None:
        self._chunks.append((top, softmax.copy(), pixels.copy()))  # the band reuses its arrays
        self._known = top + softmax.shape[0]
        while self._next_core < self.height and \
                min(self._next_core + self.plan.strip + GROWTH * self.plan.margin, self.height) <= self._known:
            self._strip()

    def finish(self) -> None:
        """The last strips, then the detections and the table assembled from the parts, the work folder removed."""
        self._known = self.height
        while self._next_core < self.height:
            self._strip()
        self._assemble()
        shutil.rmtree(self.plan.work, ignore_errors=True)

    def nuclei_per_class(self) -> dict[str, int]:
        """Class name -> nuclei of that class, every foreground class listed."""
        return {name: self.per_class[name] for name in self.plan.classes.names[1:]}

    def _strip(self) -> None:
        """The nuclei whose centroid lies in the next strip's core, found window by window."""
        plan, top = self.plan, self._next_core
        bottom, reach = min(top + plan.strip, self.height), GROWTH * plan.margin
        first, last = max(0, top - reach), min(self.height, bottom + reach)
        if any(t < last and t + s.shape[0] > first for t, s, _ in self._chunks):
            softmax, pixels = self._rows(first, last)
            found = [self._window(softmax, pixels, first, (top, bottom), core)
                     for core in range(0, self.width, plan.chunk)]
            self._write_part(top // plan.strip, [line for lines, _ in found for line in lines],
                             [row for _, rows in found for row in rows])
        self._next_core = bottom
        keep_from = max(0, bottom - reach)
        self._chunks = [c for c in self._chunks if c[0] + c[1].shape[0] > keep_from]

    def _rows(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """Level rows ``first .. last`` from the chunks taken; rows never taken are glass, which the
        instancer must see as certain background (an all-0 softmax is foreground to a threshold)."""
        softmax = np.zeros((last - first, self.width, self.plan.classes.num_classes), np.float32)
        pixels = np.zeros((last - first, self.width, 3), np.uint8)
        for top, rows, rgb in self._chunks:
            a, b = max(first, top), min(last, top + rows.shape[0])
            if a < b:
                softmax[a - first:b - first], pixels[a - first:b - first] = rows[a - top:b - top], rgb[a - top:b - top]
        background = softmax[..., 0]
        background[softmax.max(axis=-1) == 0] = 1.0
        return softmax, pixels

    def _window(self, softmax: np.ndarray, pixels: np.ndarray, first: int, rows: tuple[int, int],
                core_x: int) -> tuple[list[str], list[dict[str, Any]]]:
        """The features and table rows of the nuclei the window ``core_x`` of this strip owns
        (``softmax`` and ``pixels`` hold level rows ``first ..``, every column).

        A window one of whose nuclei touches its edge inside the slide saw only part of it: it is
        redone with its margin doubled (up to :data:`GROWTH` margins), so that it, and the
        neighbour that holds the nucleus's other part, both see it whole and agree who owns it."""
        plan = self.plan
        core_end = min(core_x + plan.chunk, self.width)
        for growth in range(1, GROWTH + 1):
            margin = growth * plan.margin
            y0, y1 = max(first, rows[0] - margin), min(first + softmax.shape[0], rows[1] + margin)
            x0, x1 = max(0, core_x - margin), min(self.width, core_end + margin)
            window = softmax[y0 - first:y1 - first, x0:x1]
            if not window[..., 1:].any():  # glass, or background beyond doubt: nothing to find
                return [], []
            owned = owned_instances(self._instances(window, pixels[y0 - first:y1 - first, x0:x1]),
                                    (rows[0] - y0, rows[1] - y0, core_x - x0, core_end - x0))
            cut = cut_objects(np.asarray(owned.labels), (y0 > 0, y1 < self.height, x0 > 0, x1 < self.width))
            if not cut:
                break
        self.cut += cut
        return self._objects(owned, pixels[y0 - first:y1 - first, x0:x1], (x0, y0))

    def _instances(self, window: np.ndarray, pixels: np.ndarray) -> Instances:
        from segkit.objects.classify import checked_instances

        plan = self.plan
        return checked_instances(plan.instancer(window, pixels), window.shape, plan.instancer_name, plan.slide_name)

    def _objects(self, owned: Instances, pixels: np.ndarray, origin: tuple[int, int]
                 ) -> tuple[list[str], list[dict[str, Any]]]:
        """Serialised features (level-0 outlines) and table rows of ``owned``, numbered on from the last."""
        import shapely

        from segkit.objects.geojson_out import detection_properties, feature_texts
        from segkit.objects.measure import nucleus_table
        from segkit.objects.outlines import object_outlines

        if not owned.count:
            return [], []
        plan = self.plan
        rows = nucleus_table(plan.slide_name, pixels, owned, plan.classes, plan.microns_per_pixel,
                             first_id=self._next_id, origin=origin, downsample=plan.downsample)
        offset = np.array(origin, np.float64)
        outlines = shapely.transform(np.array(object_outlines(np.asarray(owned.labels), owned.count), dtype=object),
                                     lambda xy: (xy + offset) * plan.downsample)
        self._next_id += owned.count
        self.per_class.update(str(row["class"]) for row in rows)
        lines = list(feature_texts(list(outlines), [str(row["uuid"]) for row in rows],
                                   detection_properties(owned, plan.classes, rows)))
        return lines, rows

    def _write_part(self, number: int, lines: list[str], rows: list[dict[str, Any]]) -> None:
        """One strip's features and rows as part files (each whole or absent), listed for the assembly."""
        if not lines:
            return
        name = f"strip-{number:07d}"
        self.plan.work.mkdir(parents=True, exist_ok=True)
        replace_atomically(self.plan.work / f"{name}.geojsonl",
                           lambda path: path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8"))
        write_table_part(self.plan.work / name, rows, self.plan.microns_per_pixel, self.plan.table)
        self._parts.append(name)

    def _assemble(self) -> None:
        from segkit.objects.geojson_out import write_collection

        plan = self.plan
        write_table_from_parts(plan.table, [plan.work / name for name in self._parts], plan.microns_per_pixel)
        write_collection(plan.detections, self._feature_lines(), plan.compress_geojson)

    def _feature_lines(self) -> Iterator[str]:
        for name in self._parts:
            with (self.plan.work / f"{name}.geojsonl").open(encoding="utf-8") as handle:
                yield from (line.rstrip("\n") for line in handle)

    def save_state(self, folder: Path) -> None:
        """The rows still pending (a strip's margin and what came since), the counters and the parts written."""
        arrays = {f"{kind}_{n}": array for n, (_, softmax, pixels) in enumerate(self._chunks)
                  for kind, array in (("softmax", softmax), ("pixels", pixels))}
        document = {"next_core": self._next_core, "known": self._known, "next_id": self._next_id,
                    "parts": self._parts, "per_class": dict(self.per_class), "cut": self.cut,
                    "tops": [c[0] for c in self._chunks]}
        folder.mkdir(parents=True, exist_ok=True)
        replace_atomically(folder / STATE_ARRAYS, lambda path: np.savez(path, **arrays))  # type: ignore[arg-type]
        replace_atomically(folder / STATE_JSON, lambda path: path.write_text(json.dumps(document), encoding="utf-8"))

    def load_state(self, folder: Path) -> None:
        """Continue from :meth:`save_state`'s ``folder``; parts written after that save are left unread."""
        document = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
        with np.load(folder / STATE_ARRAYS) as arrays:
            self._chunks = [(int(top), arrays[f"softmax_{n}"], arrays[f"pixels_{n}"])
                            for n, top in enumerate(document["tops"])]
        self._next_core, self._known = int(document["next_core"]), int(document["known"])
        self._next_id, self._parts = int(document["next_id"]), list(document["parts"])
        self.per_class = Counter({str(k): int(v) for k, v in document["per_class"].items()})
        self.cut = int(document["cut"])


def cut_objects(labels: np.ndarray, inner: tuple[bool, bool, bool, bool]) -> int:
    """How many objects of ``labels`` touch the window's top, bottom, left or right edge where
    ``inner`` says that edge lies inside the slide (the slide's own edges cut nothing)."""
    edges = (labels[0], labels[-1], labels[:, 0], labels[:, -1])
    touching = np.concatenate([edge for edge, inside in zip(edges, inner) if inside] or [np.zeros(0, labels.dtype)])
    return int(np.count_nonzero(np.unique(touching)))


def owned_instances(instances: Instances, core: tuple[int, int, int, int]) -> Instances:
    """The objects of ``instances`` whose centroid (pixel-edge coordinates: the mean pixel index
    + 0.5) lies in the window's ``core`` rows ``core[0] .. core[1]``, columns ``core[2] .. core[3]``,
    renumbered ``1..N`` in their order. Exact: ``2 sum + area`` against ``2 edge x area`` in integers
    (float64 holds them exactly), so two windows never both own, nor both miss, a nucleus."""
    labels = np.asarray(instances.labels)
    where = np.flatnonzero(labels)
    ids = labels.ravel()[where]
    rows, columns = np.divmod(where, labels.shape[1])
    area = np.bincount(ids, minlength=instances.count + 1)[1:].astype(np.float64)
    inside = np.ones(instances.count, bool)
    for index, (low, high) in zip((rows, columns), ((core[0], core[1]), (core[2], core[3]))):
        twice = 2 * np.bincount(ids, index.astype(np.float64), minlength=instances.count + 1)[1:] + area
        inside &= (twice >= 2 * low * area) & (twice < 2 * high * area)
    renumber = np.zeros(instances.count + 1, np.int32)
    renumber[1:][inside] = np.arange(1, int(inside.sum()) + 1, dtype=np.int32)
    return Instances(renumber[labels], np.asarray(instances.classes)[inside],
                     np.asarray(instances.probabilities)[inside])


def write_table_part(stem: Path, rows: list[dict[str, Any]], microns_per_pixel: float, table: Path) -> None:
    """``<stem>.parquet`` (when ``table`` is Parquet) or ``<stem>.csv``: one strip's table rows."""
    from segkit.objects.measure import arrow_schema, nucleus_columns, write_csv

    columns = nucleus_columns(microns_per_pixel)
    if table.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        part = pa.Table.from_pydict({name: [row[name] for row in rows] for name in columns},
                                    schema=arrow_schema(pa, [], columns))
        replace_atomically(stem.with_suffix(".parquet"), lambda path: pq.write_table(part, path))
    else:
        replace_atomically(stem.with_suffix(".csv"), lambda path: write_csv(path, rows, columns))


def write_table_from_parts(table: Path, parts: list[Path], microns_per_pixel: float) -> None:
    """``table`` replaced whole by the parts' rows in order: one Parquet row group per part, read one
    part at a time, or the CSV parts' lines under one header."""
    from segkit.objects.measure import arrow_schema, nucleus_columns, write_csv

    columns = nucleus_columns(microns_per_pixel)
    if table.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        def write_parquet(path: Path) -> None:
            with pq.ParquetWriter(path, arrow_schema(pa, [], columns)) as writer:
                for part in parts:
                    writer.write_table(pq.read_table(part.with_suffix(".parquet")))

        replace_atomically(table, write_parquet)
        return

    def write_text(path: Path) -> None:
        write_csv(path, [], columns)
        with path.open("a", encoding="utf-8", newline="") as out:
            for part in parts:
                with part.with_suffix(".csv").open(encoding="utf-8", newline="") as handle:
                    handle.readline()  # its header
                    shutil.copyfileobj(handle, out)

    replace_atomically(table, write_text)
