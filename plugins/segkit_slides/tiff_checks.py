"""Checks for the readers built on tifffile (``ome-tiff``, ``tiffslide``): a truncated or corrupt file
is found when it is opened, from its directories, rather than as garbage or a warning later."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any


class _Complaints(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def tifffile_complaints() -> Iterator[list[str]]:
    """What tifffile logs while the block runs (an IFD past the file's end, a bad tag), kept rather than
    printed: a warning on stderr would break segkit's one-line errors, and is the reader's to report."""
    logger = logging.getLogger("tifffile")
    handler, propagate = _Complaints(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def damage(tiff: Any, complaints: list[str]) -> str | None:
    """Why the opened ``tifffile.TiffFile`` is truncated or corrupt, or ``None``: what tifffile complained
    of, or a level whose tiles lie past the file's end."""
    if complaints:
        return f"the file is truncated or corrupt: {complaints[0].strip()}"
    size = tiff.filehandle.size
    for level, series in enumerate(tiff.series[0].levels if tiff.series else ()):
        page = series.keyframe
        end = max((o + c for o, c in zip(page.dataoffsets, page.databytecounts)), default=0)
        if end > size:
            return f"the file is truncated: level {level}'s tiles end at byte {end}, past its end ({size} bytes)"
    return None
