"""Instance label images: reading, writing and checking them, and the true objects of a mask.

An instance label image is one grey channel of integer ids: 0 where there is no nucleus,
``1..N`` (any positive ids, in fact) for the nuclei. TIFFs are read with tifffile (16- and
32-bit ids), other formats with Pillow (8/16-bit grey PNGs). JPEG is refused: its lossy
compression changes ids at every edge. tifffile and scikit-image are imported only when a
function here needs them, so importing this module (segkit.data.folders does) stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segkit.classes import IGNORE_INDEX
from segkit.data.images import reading
from segkit.durable import replace_atomically
from segkit.data.names import shown_path
from segkit.errors import DataError
from segkit.text import visible

TIFF_SUFFIXES = (".tif", ".tiff")
#: what to do about any bad instance label file, said at the end of each error
_ADVICE = "save the ids as one grey channel of integers, 0 off nuclei: a 16/32-bit TIFF or an 8/16-bit PNG"
#: Pillow modes of one grey channel and the NumPy type their pixels decode to
_PILLOW_MODES = {"L": np.uint8, "I;16": np.uint16, "I;16B": np.uint16, "I;16L": np.uint16, "I": np.int32,
                 "F": np.float32, "1": np.bool_}
_LARGEST_ID = int(np.iinfo(np.int32).max)


@dataclass(frozen=True)
class _Header:
    """What a label file's header says: its pixel array's shape and type (nothing decoded)."""

    shape: tuple[int, ...]
    dtype: np.dtype


def _bad(path: Path, problem: str) -> DataError:
    return DataError(f"{shown_path(path)}: {problem} ({_ADVICE})")


def _unreadable(path: Path, exc: BaseException) -> DataError:
    """Any failure to open or decode ``path`` (untrusted input) as the file's one-line error."""
    if isinstance(exc, PermissionError):
        return DataError(f"{shown_path(path)}: cannot be read (permission denied; give yourself read access)")
    empty = path.is_file() and path.stat().st_size == 0
    detail = "it is empty (0 bytes)" if empty else visible(" ".join(str(exc).split()))[:160]
    return DataError(f"{shown_path(path)}: cannot be read as an instance label image ({detail}); "
                     "re-export it or remove it from the folder")


def _is_tiff(path: Path) -> bool:
    return path.suffix.lower() in TIFF_SUFFIXES


def _header(path: Path) -> _Header:
    if path.suffix.lower() in (".jpg", ".jpeg"):
        raise _bad(path, "is a JPEG, whose lossy compression changes ids at every edge")
    with reading(path, _unreadable):
        if _is_tiff(path):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                return _Header(tuple(int(n) for n in series.shape), np.dtype(series.dtype))
        from PIL import Image

        with Image.open(path) as image:
            width, height = image.size
            if image.mode in _PILLOW_MODES:
                return _Header((height, width), np.dtype(_PILLOW_MODES[image.mode]))
            return _Header((height, width, len(image.getbands())), np.dtype(np.uint8))


def _check_header(path: Path, header: _Header) -> None:
    if len(header.shape) != 2:
        shape = "x".join(str(n) for n in header.shape)
        raise _bad(path, f"is not one 2-D grey image of ids: its pixels are {shape}")
    if header.dtype.kind == "b":
        raise _bad(path, "ids must be integers, this file holds 1-bit (true/false) pixels")
    if header.dtype.kind not in "iu":
        raise _bad(path, f"ids must be integers, this file holds {header.dtype.name} values")


def instance_label_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of a label file from its header, which must say one channel of integers."""
    header = _header(path)
    _check_header(path, header)
    return header.shape[1], header.shape[0]


def read_instance_labels(path: Path) -> np.ndarray:
    """The ids of ``path`` as ``(H, W)`` int32; a DataError naming the file when they are not ids."""
    header = _header(path)
    _check_header(path, header)
    with reading(path, _unreadable):
        if _is_tiff(path):
            import tifffile

            ids = np.asarray(tifffile.imread(path, key=0))
        else:
            from PIL import Image

            with Image.open(path) as image:
                ids = np.asarray(image)
    if ids.ndim != 2:  # a header that lied about its shape
        _check_header(path, _Header(ids.shape, ids.dtype))
    if ids.size and int(ids.min()) < 0:
        raise _bad(path, f"ids must not be negative, this file holds {int(ids.min())}")
    if ids.size and int(ids.max()) > _LARGEST_ID:
        raise _bad(path, f"ids must be at most {_LARGEST_ID}, this file holds {int(ids.max())}")
    return ids.astype(np.int32)


def size_mismatch(path: Path, size: tuple[int, int], image: Path, image_size: tuple[int, int]) -> DataError:
    """The error for a label file of ``size`` beside an image of another ``image_size`` (both (w, h))."""
    return DataError(
        f"{shown_path(path)}: instance labels are {size[0]}x{size[1]} but its image {shown_path(image.name)} is "
        f"{image_size[0]}x{image_size[1]}; instance labels must have their image's size"
    )


def write_instance_labels(path: Path, labels: np.ndarray) -> None:
    """Write ids ``(H, W)`` as a zlib TIFF, uint16 when the largest id is below 65536 else uint32,
    atomically (a temp file renamed into place, so a reader never sees half a file)."""
    import tifffile

    ids = np.asarray(labels)
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise ValueError(f"instance labels must be 2-D integers, got {ids.dtype} of shape {ids.shape}")
    if ids.size and int(ids.min()) < 0:
        raise ValueError(f"instance ids must not be negative, got {int(ids.min())}")
    top = int(ids.max()) if ids.size else 0
    if top > np.iinfo(np.uint32).max:
        raise ValueError(f"instance ids must fit 32 bits, got {top}")
    stored = ids.astype(np.uint16 if top < 2**16 else np.uint32)
    replace_atomically(path, lambda temporary: tifffile.imwrite(temporary, stored, compression="zlib"))


def truth_objects(mask: np.ndarray, instances: np.ndarray | None, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The true objects of one image: ``(labels (H, W) int32 1..N, classes (N,) int)``.

    With instance ids, each id is one object whose class is the foreground class (1..K-1) most of
    its pixels have in ``mask`` (ties to the lower index); an id with no foreground pixel in the
    mask (all background or ignored) is no object. Without ids (``None``), the objects are the
    4-connected components of each foreground class, so touching nuclei of one class are one.
    Pixels of ``IGNORE_INDEX`` are never part of an object's class vote.
    """
    mask = np.asarray(mask)
    if instances is None:
        return _components_per_class(mask, num_classes)
    ids = np.asarray(instances)
    if ids.shape != mask.shape:
        raise ValueError(f"instances {ids.shape} and mask {mask.shape} must have one shape")
    from skimage.segmentation import relabel_sequential

    labels = relabel_sequential(ids.astype(np.int32))[0]
    count = int(labels.max()) if labels.size else 0
    foreground = (mask >= 1) & (mask < num_classes) & (mask != IGNORE_INDEX)
    votes = np.bincount(labels[foreground].astype(np.int64) * num_classes + mask[foreground],
                        minlength=(count + 1) * num_classes).reshape(count + 1, num_classes)[1:, 1:]
    kept = votes.sum(axis=1) > 0
    classes = votes.argmax(axis=1) + 1
    if kept.all():
        return labels.astype(np.int32), classes.astype(np.int64)
    lookup = np.zeros(count + 1, np.int32)
    lookup[1:][kept] = np.arange(1, int(kept.sum()) + 1, dtype=np.int32)
    return lookup[labels], classes[kept].astype(np.int64)


def _components_per_class(mask: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    from skimage.measure import label

    labels = np.zeros(mask.shape, np.int32)
    classes: list[int] = []
    for class_index in range(1, num_classes):
        components, count = label(mask == class_index, connectivity=1, return_num=True)
        inside = components > 0
        labels[inside] = components[inside] + len(classes)  # after the objects of the classes before
        classes.extend([class_index] * count)
    return labels, np.array(classes, np.int64)
