"""Reading a GeoJSON file of objects as QuPath (and tools writing for it) export them, and
rasterising its polygons onto the image's pixels.

What is accepted, per file: a FeatureCollection, a bare list of Features (QuPath's "Export
objects as GeoJSON" without "as FeatureCollection") or a single Feature; ``.geojson``, ``.json``
or gzip-compressed ``.geojson.gz``. Per feature:

- the type from ``properties.objectType`` (QuPath 0.3+) or the legacy ``properties.object_type``;
- the class from ``properties.classification``: ``{"name": ..., "color": ...}`` as QuPath writes
  it, a bare string (what other tools write), or ``{"names": [...]}`` joined by ``": "`` the way
  QuPath names a derived class (``Tumor: Positive``; that form was not confirmed against
  QuPath's source in this session);
- the geometry: Polygon or MultiPolygon, holes included. A ``cell`` whose feature carries a
  ``nucleusGeometry`` is read as its nucleus, since segkit segments nuclei; a cell without one
  is read as its outline. Points and lines have no area to label: they are set aside with a note
  (QuPath's point-counting annotations are common in exports, and refusing them would make a
  whole export unusable), not refused.

A feature that cannot be used (no geometry, an invalid polygon, coordinates outside the image,
a GeometryCollection) is a :class:`BadFeature`: the caller refuses the file naming the first,
or skips each and reports it; the reader never drops one silently.

Rasterising follows :mod:`segkit.objects.outlines` (each object written as the union of its
pixel squares): pixel ``(r, c)`` is inside a geometry iff its centre ``(c + 0.5, r + 0.5)`` is
(``shapely.contains_xy``, so a centre on the boundary or in a hole is out). Features are painted
in file order, later over earlier: QuPath writes parents before their children.
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segkit.data.names import shown_path
from segkit.errors import DataError
from segkit.text import visible

#: file names a GeoJSON of objects may have (checked lower-case)
GEOJSON_SUFFIXES = (".geojson", ".json", ".geojson.gz", ".json.gz")
#: geometry types with an area, the only ones that can label pixels
_AREAL = ("Polygon", "MultiPolygon")
#: geometry types with none: set aside with a note, never refused
_NO_AREA = ("Point", "MultiPoint", "LineString", "MultiLineString")
#: what to do about a bad feature, at the end of its message
FEATURE_ADVICE = "fix or delete it in QuPath and export again, or set [dataset] skip_bad_features = true"


@dataclass(frozen=True)
class QuPathFeature:
    """One usable feature: its position in the file (0-based), QuPath class name (None when
    unclassified), polygonal shapely geometry and object type (None when the file says none)."""

    index: int
    class_name: str | None
    geometry: Any
    object_type: str | None


@dataclass(frozen=True)
class BadFeature:
    """A feature that cannot be used, and why in one phrase."""

    index: int
    problem: str
    #: a point or line: nothing wrong with it, but nothing to paint either
    no_area: bool = False
    #: what to do about it, at the end of its message
    advice: str = FEATURE_ADVICE


@dataclass(frozen=True)
class FeatureFile:
    """What one file holds: its usable features, its bad ones, and those without area (points, lines)."""

    path: Path
    total: int
    features: tuple[QuPathFeature, ...]
    bad: tuple[BadFeature, ...]
    without_area: tuple[BadFeature, ...]

    @property
    def shown(self) -> str:
        """The file's path for a message."""
        return shown_path(self.path)

    def where(self, index: int) -> str:
        """``file: feature 3 of 7``, 1-based as a person counts them."""
        return f"{self.shown}: feature {index + 1} of {self.total}"

    def error(self, bad: BadFeature) -> DataError:
        return DataError(f"{self.where(bad.index)}: {bad.problem} ({bad.advice})")


def is_geojson_name(path: Path) -> bool:
    """Whether ``path``'s name says GeoJSON (any case), hidden files (``._a.geojson``) excepted."""
    name = path.name.lower()
    return name.endswith(GEOJSON_SUFFIXES) and not name.startswith(".")


def geojson_stem(path: Path) -> str:
    """The name without its GeoJSON suffix: ``a.geojson.gz`` -> ``a`` (pairs with ``a.png``)."""
    name = path.name
    for suffix in sorted(GEOJSON_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def read_features(path: Path, image_size: tuple[int, int] | None = None) -> FeatureFile:
    """Parse ``path``; ``image_size`` ``(width, height)`` makes a feature reaching outside it bad.

    A file that is not JSON, or JSON that is not GeoJSON features, is a DataError naming it.
    """
    items = _feature_items(path, _parsed(path))
    features: list[QuPathFeature] = []
    bad: list[BadFeature] = []
    without_area: list[BadFeature] = []
    for index, item in enumerate(items):
        read = _read_feature(index, item, image_size)
        if isinstance(read, QuPathFeature):
            features.append(read)
        elif read.no_area:
            without_area.append(read)
        else:
            bad.append(read)
    return FeatureFile(path, len(items), tuple(features), tuple(bad), tuple(without_area))


def _parsed(path: Path) -> Any:
    """The JSON document in ``path`` (gunzipped when its name ends ``.gz``)."""
    where = shown_path(path)
    try:
        raw = path.read_bytes()
        if path.name.lower().endswith(".gz"):
            raw = gzip.decompress(raw)
        return json.loads(raw)
    except (OSError, EOFError, zlib.error) as exc:
        detail = getattr(exc, "strerror", None) or visible(str(exc))[:160]
        raise DataError(f"{where}: cannot be read ({detail}; export it again from QuPath)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{where}: is not JSON ({visible(str(exc))[:160]}; export it again from QuPath "
                        "with File > Export objects as GeoJSON)") from None
    except RecursionError:
        raise DataError(f"{where}: is not JSON this reader can take (nested too deeply)") from None


def _feature_items(path: Path, document: Any) -> list[Any]:
    """The features of a FeatureCollection, a bare list or a single Feature."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        kind = document.get("type")
        if kind == "FeatureCollection" and isinstance(document.get("features"), list):
            return list(document["features"])
        if kind == "Feature":
            return [document]
        found = f"an object of type {visible(str(kind))[:40]!r}" if kind is not None else "an object without 'type'"
    else:
        found = f"a JSON {type(document).__name__}"
    raise DataError(f"{shown_path(path)}: is not GeoJSON features (found {found}; expected a FeatureCollection, "
                    "a list of Features or one Feature, as QuPath's Export objects as GeoJSON writes)")


def _read_feature(index: int, item: Any, image_size: tuple[int, int] | None) -> QuPathFeature | BadFeature:
    if not isinstance(item, dict) or item.get("type", "Feature") != "Feature":
        return BadFeature(index, "is not a GeoJSON Feature")
    found = item.get("properties")
    properties: dict[str, Any] = found if isinstance(found, dict) else {}
    object_type = _object_type(properties)
    source = item.get("geometry")
    if object_type == "cell" and isinstance(nucleus := item.get("nucleusGeometry", properties.get("nucleusGeometry")),
                                            dict):
        source = nucleus
    if not isinstance(source, dict):
        return BadFeature(index, "has no geometry")
    geometry = _geometry(index, source)
    if isinstance(geometry, BadFeature):
        return geometry
    problem = _outside(geometry, image_size)
    if problem:
        return BadFeature(index, problem)
    return QuPathFeature(index, class_name(properties), geometry, object_type)


def _object_type(properties: dict[str, Any]) -> str | None:
    kind = properties.get("objectType", properties.get("object_type"))
    return str(kind).lower() if isinstance(kind, str) else None


def class_name(properties: dict[str, Any]) -> str | None:
    """The QuPath class of a feature's properties: ``classification`` as an object or a bare name."""
    found = properties.get("classification")
    if isinstance(found, str):
        return found or None
    if isinstance(found, dict):
        if isinstance(found.get("name"), str):
            return found["name"] or None
        names = found.get("names")
        if isinstance(names, list) and names and all(isinstance(name, str) for name in names):
            return ": ".join(names)
    return None


def _geometry(index: int, source: dict[str, Any]) -> Any:
    """The shapely geometry of a GeoJSON geometry object, or the BadFeature saying why it is none."""
    import shapely
    from shapely.geometry import shape

    kind = source.get("type")
    if kind in _NO_AREA:
        return BadFeature(index, f"is a {kind}, which has no area to label (left out)", no_area=True)
    if kind not in _AREAL:
        shown = visible(str(kind))[:40]
        return BadFeature(index, f"has a {shown} geometry; only Polygon and MultiPolygon can label pixels")
    try:
        geometry = shape(source)
    except Exception as exc:  # noqa: BLE001 - shapely raises many kinds on malformed coordinates (untrusted input)
        return BadFeature(index, f"has {kind} coordinates that cannot be read ({visible(str(exc))[:120]})")
    if geometry.is_empty:
        return BadFeature(index, f"has an empty {kind}")
    if not shapely.is_valid(geometry):
        return BadFeature(index, f"has an invalid {kind}: {shapely.is_valid_reason(geometry)}")
    return geometry


def _outside(geometry: Any, image_size: tuple[int, int] | None) -> str:
    """Why ``geometry`` does not fit the image (pixel edges 0..width, 0..height); '' when it does."""
    min_x, min_y, max_x, max_y = geometry.bounds
    if not all(math.isfinite(value) for value in geometry.bounds):
        return "has coordinates that are not finite numbers"
    if image_size is None:
        return ""
    width, height = image_size
    if min_x < 0 or min_y < 0 or max_x > width or max_y > height:
        return (f"reaches x {min_x:g}..{max_x:g}, y {min_y:g}..{max_y:g}, outside the {width}x{height} image "
                "(was it exported from another image, or at another resolution?)")
    return ""


def pixels_inside(geometry: Any, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, cols)`` of the pixels of an ``(H, W)`` image whose centres lie inside ``geometry``,
    tested only over its bounding box."""
    import shapely

    height, width = shape
    min_x, min_y, max_x, max_y = geometry.bounds
    # columns whose centre c + 0.5 lies within [min_x, max_x], clipped to the image
    first_col, last_col = max(0, math.ceil(min_x - 0.5)), min(width - 1, math.floor(max_x - 0.5))
    first_row, last_row = max(0, math.ceil(min_y - 0.5)), min(height - 1, math.floor(max_y - 0.5))
    if first_col > last_col or first_row > last_row:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    rows, cols = np.mgrid[first_row:last_row + 1, first_col:last_col + 1]
    shapely.prepare(geometry)
    inside = shapely.contains_xy(geometry, cols + 0.5, rows + 0.5)
    return rows[inside], cols[inside]


def paint(geometries: Sequence[Any], values: Sequence[int], shape: tuple[int, int], dtype: Any = np.int32
          ) -> np.ndarray:
    """An ``(H, W)`` array, 0 where no geometry is, ``values[i]`` inside ``geometries[i]``, painted
    in order (later over earlier)."""
    canvas = np.zeros(shape, dtype=dtype)
    for geometry, value in zip(geometries, values, strict=True):
        canvas[pixels_inside(geometry, shape)] = value
    return canvas
