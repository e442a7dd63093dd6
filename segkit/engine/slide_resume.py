"""Resuming an interrupted slide where it stopped: the tiles done are never predicted again.

While a slide is segmented, its work in progress lives in a hidden folder beside the outputs,
``.<stem>.segkit-partial/``: the level-0 mask canvas (a named scratch file instead of an unlinked
one) and, every :data:`CHECKPOINT_SECONDS`, a checkpoint: the blending band's pending rows (and
any row sink's pending state) in a numbered generation folder, then ``journal.json`` naming that
generation and how many tiles (in the grid's raster order) it holds. The journal is replaced
atomically and last, so a process killed at any moment leaves the previous checkpoint whole.

A rerun resumes only a checkpoint made for the same slide file (size and modification time), the
same model file, level, tiles and prediction settings (:func:`resume_key`); any other partial
folder is thrown away and the slide starts over. Rows flushed into the canvas after the last
checkpoint are simply written again, with the same values. A run that fails before its first
checkpoint leaves no partial folder; a finished slide removes its own.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from segkit.durable import replace_durably
from segkit.slides.grid import Tile
from segkit.slides.outputs import RECORD_SUFFIX, SlideOutputs

#: seconds of work an interrupt may cost at most (a checkpoint is written at least this often)
CHECKPOINT_SECONDS = 30.0
JOURNAL = "journal.json"
CANVAS = "mask.canvas"


def partial_folder(outputs: SlideOutputs) -> Path:
    """The hidden folder of a slide's work in progress, beside its outputs."""
    return outputs.record.with_name(f".{outputs.record.name.removesuffix(RECORD_SUFFIX)}.segkit-partial")


def resume_key(slide: Path, model_digest: str, level: int, scale: float, tiles: Sequence[Tile],
               settings: str) -> dict[str, Any]:
    """What a checkpoint must have been made with to be resumed (see the module's docstring)."""
    status = slide.stat()
    layout = hashlib.sha256(repr([(t.row, t.column, t.x, t.y, t.read_width, t.read_height) for t in tiles])
                            .encode()).hexdigest()
    return {"slide": slide.name, "slide_bytes": status.st_size, "slide_mtime_ns": status.st_mtime_ns,
            "model_sha256": model_digest, "level": level, "scale": scale, "tiles": len(tiles),
            "tile_layout": layout, "settings": settings}


class SlideCheckpoints:
    """The partial folder of one slide: opened (a matching checkpoint found, anything else cleared),
    saved every :data:`CHECKPOINT_SECONDS`, removed when the slide is done."""

    def __init__(self, folder: Path, key: dict[str, Any]) -> None:
        self.folder, self.key = folder, key
        self.tiles_done, self.generation = 0, 0
        journal = self._journal()
        if journal is not None and journal.get("key") == key and (self.state_folder(journal["generation"])).is_dir():
            self.tiles_done, self.generation = int(journal["tiles_done"]), int(journal["generation"])
        elif folder.exists():
            shutil.rmtree(folder)  # made for another slide file, model or layout: start over
        folder.mkdir(exist_ok=True)
        #: the tiles an earlier, interrupted call had done (0 for a fresh start)
        self.tiles_resumed = self.tiles_done
        self._saved_at = time.monotonic()

    @property
    def canvas(self) -> Path:
        return self.folder / CANVAS

    def state_folder(self, generation: int | None = None) -> Path:
        """The folder of a checkpoint's band and sink states (the current one by default)."""
        return self.folder / f"state-{self.generation if generation is None else generation}"

    def due(self) -> bool:
        return time.monotonic() - self._saved_at >= CHECKPOINT_SECONDS

    def save(self, tiles_done: int, sync_canvas: Callable[[], None], write_state: Callable[[Path], None]) -> None:
        """A checkpoint after ``tiles_done`` tiles: the canvas synced, the states in a new generation,
        then the journal naming it, then the previous generation removed."""
        sync_canvas()
        previous, generation = self.generation, self.generation + 1
        state = self.state_folder(generation)
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir()
        write_state(state)
        document = {"key": self.key, "tiles_done": tiles_done, "generation": generation}
        replace_durably(self.folder / JOURNAL, lambda path: path.write_text(json.dumps(document, indent=1) + "\n"),
                        self.folder)
        self.tiles_done, self.generation = tiles_done, generation
        shutil.rmtree(self.state_folder(previous), ignore_errors=True)
        self._saved_at = time.monotonic()

    def finished(self) -> None:
        """The slide is done: its work in progress goes."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def failed(self) -> None:
        """The slide stopped (an interrupt, a broken tile): kept when a checkpoint can resume it, else removed."""
        if self.tiles_done == 0:
            self.finished()

    def _journal(self) -> dict[str, Any] | None:
        try:
            document = json.loads((self.folder / JOURNAL).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return document if isinstance(document, dict) else None
