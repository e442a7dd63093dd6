"""Decoded pairs kept after their first decode (``[train] cache``), looked up by pair.

The training pipeline shuffles pair *indices* and decodes after the shuffle, so the first batch
waits for ``batch_size`` decodes, not for the whole set. tf.data's own ``cache()`` only replays a
dataset in the order it was first read, so the cache lives here instead, where a random index can
reach it: a dict for ``"memory"``, one ``.npz`` file per pair for ``"disk"``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from segkit.data.pairing import Pair

Decoded = tuple[np.ndarray, np.ndarray]


class DecodedStore:
    """Where decoded ``(image, mask)`` arrays of one pipeline live; ``cache`` is ``[train] cache``.

    ``layout`` names how the arrays were made (size, crop or resize) so that a disk cache written
    for one model size is never read for another; a pair's file also changes with the files'
    modification times, so editing a mask invalidates its entry.
    """

    def __init__(self, cache: str, folder: Path | None, layout: str) -> None:
        self.cache = cache
        self.folder = folder / layout if cache == "disk" and folder is not None else None
        self._memory: dict[int, Decoded] = {}
        self._lock = threading.Lock()

    def get(self, index: int, pair: Pair, decode: Callable[[], Decoded]) -> Decoded:
        """The arrays of ``pair`` (at ``index`` in the pipeline's pair list), decoding on a miss."""
        if self.cache == "memory":
            found = self._memory.get(index)
            if found is None:
                found = decode()
                with self._lock:
                    self._memory.setdefault(index, found)
            return found
        if self.folder is not None:
            return self._from_disk(pair, decode)
        return decode()

    def _from_disk(self, pair: Pair, decode: Callable[[], Decoded]) -> Decoded:
        assert self.folder is not None
        path = self.folder / f"{_fingerprint(pair)}.npz"
        if path.is_file():
            with np.load(path) as stored:
                return stored["image"], stored["mask"]
        image, mask = decode()
        self.folder.mkdir(parents=True, exist_ok=True)
        # written under a temporary name and renamed: a parallel reader never sees half a file
        handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".part")
        with os.fdopen(handle, "wb") as out:
            np.savez(out, image=image, mask=mask)
        os.replace(temporary, path)
        return image, mask


def _fingerprint(pair: Pair) -> str:
    parts = [pair.stem]
    for path in (pair.image, pair.mask):
        stat = path.stat()
        parts += [str(path.resolve()), str(stat.st_mtime_ns), str(stat.st_size)]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:20]
