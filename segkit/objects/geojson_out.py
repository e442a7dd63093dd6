"""Objects of one image as a GeoJSON FeatureCollection QuPath imports: the nuclei ``segkit infer``
finds as detections, and any outlines (``segkit prepare qupath-geojson``'s masks) as annotations.

The layout is the one QuPath itself reads and writes (qupath-core ``qupath.lib.io``,
``QuPathTypeAdapters.PathObjectTypeAdapter`` and ``GsonTools.PathClassTypeAdapter``): a
feature's ``id`` is the object's UUID; ``properties.objectType`` is ``"detection"`` or ``"annotation"``;
``properties.classification`` is ``{"name": ..., "color": [r, g, b]}`` (QuPath takes the
object form only with both keys); ``properties.measurements`` maps names to numbers, with
``"NaN"`` as a string where a value is missing, as QuPath writes it (strict JSON has no NaN).
Coordinates are pixels of the full image, y downwards, pixel edges as QuPath draws them.

The file is written feature by feature: memory holds the text of one feature's properties and
of at most 512 outlines at a time, never the whole collection.
"""

from __future__ import annotations

import gzip
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from segkit.classes import ClassInfo, ClassTable
from segkit.durable import replace_atomically
from segkit.specs import Instances

#: QuPath's object types (``objectType``): a detection is a result, an annotation is editable
DETECTION, ANNOTATION = "detection", "annotation"
#: row columns that name the nucleus rather than measure it: not among its measurements
_NOT_MEASUREMENTS = frozenset({"image", "uuid", "class"})
#: how QuPath writes the numbers strict JSON cannot hold (MeasurementListTypeAdapter.write)
_NOT_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
#: the ".0" of a whole-number coordinate (every outline vertex is a pixel corner): a third of the file
_INTEGER_COORDINATE = re.compile(r"\.0(?=[,\]])")


def write_detections(path: Path, instances: Instances, classes: ClassTable, rows: list[dict[str, Any]],
                     compress: bool) -> int:
    """Write ``path`` (``.geojson``, or gzip ``.geojson.gz`` when ``compress``): one feature per
    object of ``instances``, ``rows[i]`` (its :func:`segkit.objects.measure.nucleus_table` row) giving
    object ``i + 1``'s id and measurements. Returns the number of features written."""
    from segkit.objects.outlines import object_outlines

    if len(rows) != instances.count:
        raise ValueError(f"{len(rows)} table rows for {instances.count} objects")
    outlines = object_outlines(np.asarray(instances.labels), instances.count)
    return write_features(path, outlines, [str(row["uuid"]) for row in rows],
                          detection_properties(instances, classes, rows), compress)


def detection_properties(instances: Instances, classes: ClassTable, rows: Sequence[Mapping[str, Any]]
                         ) -> Iterator[dict[str, Any]]:
    """The QuPath properties of each object of ``instances``: a detection of its class, measured by its row."""
    for index, row in enumerate(rows):
        yield qupath_properties(DETECTION, classes.classes[int(instances.classes[index])], measurements(row))


def write_features(path: Path, geometries: Sequence[Any], ids: Sequence[str],
                   properties: Iterable[Mapping[str, Any]], compress: bool) -> int:
    """Write ``path`` (``.geojson``, or gzip ``.geojson.gz`` when ``compress``), replacing it whole:
    a FeatureCollection of feature ``i`` = ``geometries[i]`` (shapely, pixel coordinates) with
    ``ids[i]`` and ``properties``' item ``i`` (:func:`qupath_properties` for QuPath to read it).
    Returns the number of features written."""
    _check_request(path, compress, len(ids), len(geometries))
    write_collection(path, feature_texts(geometries, ids, properties), compress)
    return len(ids)


def feature_texts(geometries: Sequence[Any], ids: Sequence[str], properties: Iterable[Mapping[str, Any]]
                  ) -> Iterator[str]:
    """Feature ``i`` of :func:`write_features` serialised, one line each, made as they are asked for."""
    for geometry, feature_id, found in zip(_geometry_texts(geometries), ids, properties):
        yield _feature_text(geometry, feature_id, found)


def write_collection(path: Path, features: Iterable[str], compress: bool) -> None:
    """``path`` replaced whole by the FeatureCollection of ``features`` (serialised features, e.g.
    :func:`feature_texts`, read one at a time: a slide's detections stream from part files)."""
    def write(temporary: Path) -> None:
        with _open_text(temporary, compress) as handle:
            handle.write('{"type": "FeatureCollection", "features": [')
            for index, text in enumerate(features):
                handle.write(("\n" if index == 0 else ",\n") + text)
            handle.write("\n]}\n")

    replace_atomically(path, write)


def qupath_properties(object_type: str, info: ClassInfo, measured: Mapping[str, float | str] | None = None
                      ) -> dict[str, Any]:
    """A feature's ``properties`` as QuPath reads them: its object type (:data:`DETECTION` or
    :data:`ANNOTATION`), its class, and its measurements where it has any."""
    properties: dict[str, Any] = {"objectType": object_type,
                                  "classification": {"name": info.name, "color": list(info.color)}}
    if measured is not None:
        properties["measurements"] = dict(measured)
    return properties


def _check_request(path: Path, compress: bool, ids: int, geometries: int) -> None:
    """A ValueError (the caller's mistake, not the user's) for a suffix that belies ``compress``
    or ids that are not one per geometry."""
    suffix = ".geojson.gz" if compress else ".geojson"
    if not path.name.endswith(suffix) or (not compress and path.name.endswith(".gz")):
        raise ValueError(f"{path.name}: a {'compressed' if compress else 'plain'} GeoJSON file ends {suffix}")
    if ids != geometries:
        raise ValueError(f"{ids} feature ids for {geometries} geometries")


def _geometry_texts(outlines: Sequence[Any], chunk: int = 512) -> Iterator[str]:
    """Each outline's GeoJSON geometry, made ``chunk`` at a time by GEOS's writer (fast, and never
    the text of every outline at once)."""
    import shapely

    for first in range(0, len(outlines), chunk):
        yield from shapely.to_geojson(np.array(outlines[first:first + chunk], dtype=object))


def _open_text(path: Path, compress: bool) -> IO[str]:
    if compress:
        return gzip.open(path, "wt", encoding="utf-8")
    return path.open("w", encoding="utf-8")


def _feature_text(geometry: str, feature_id: str, properties: Mapping[str, Any]) -> str:
    """One feature, serialised; ``geometry`` is its outline's GeoJSON."""
    import geojson

    text: str = geojson.dumps(geojson.Feature(id=feature_id, geometry=None, properties=dict(properties)))
    # geojson.Feature re-checks every coordinate in Python (~0.6 ms a nucleus, more than all the rest
    # together); GEOS's own GeoJSON writer (shapely.to_geojson) gives the same text for all outlines at
    # once. "type" and the id come first, so the first '"geometry": null' is the feature's own.
    return text.replace('"geometry": null', f'"geometry": {_INTEGER_COORDINATE.sub("", geometry)}', 1)


def measurements(row: Mapping[str, Any]) -> dict[str, float | str]:
    """The numeric columns of a table row, QuPath's way: a float each, ``"NaN"`` where missing."""
    found: dict[str, float | str] = {}
    for name, value in row.items():
        if name in _NOT_MEASUREMENTS or isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            continue
        number = float(value)
        found[name] = number if math.isfinite(number) else _NOT_FINITE[str(number)]
    return found
