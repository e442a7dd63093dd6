"""An interrupted slide resumes where it stopped (segkit/engine/slide_resume.py): the tiles done are not
predicted again, and the mask equals one made without interruption."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from segkit.engine import slide_infer, slide_resume
from segkit.engine.slide_infer import segment_slide
from segkit.plugins import get_registry
from segkit.slides.outputs import slide_outputs
from slide_files import synthetic_slide, write_pyramid
from test_slide_infer import colour_project


class Interrupted(KeyboardInterrupt):
    """What Ctrl-C (or the CLI's SIGTERM handler) raises, at a chosen batch."""


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    image, _, _ = synthetic_slide(384, 320, seed=9, tile=64, margin=32)
    path = tmp_path_factory.mktemp("slide") / "case.svs"
    write_pyramid(path, image, style="aperio", microns_per_pixel=0.5, tile=64, levels=2)
    return path


@pytest.fixture()
def predicted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of tiles each model call predicted, from now on."""
    calls: list[int] = []
    real = slide_infer.tile_softmax

    def counting(model: Any, tiles: Any, how: Any) -> Any:
        calls.append(len(tiles))
        return real(model, tiles, how)

    monkeypatch.setattr(slide_infer, "tile_softmax", counting)
    monkeypatch.setattr(slide_resume, "CHECKPOINT_SECONDS", 0.0)  # a checkpoint after every batch
    return calls


def stop_after(batches: int) -> Callable[[int, int], None]:
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == batches:
            raise Interrupted

    return progress


def test_a_rerun_after_an_interrupt_predicts_only_the_tiles_left_and_gives_the_same_mask(
        tmp_path: Path, slide: Path, predicted: list[int]) -> None:
    project = colour_project(tmp_path / "project", 0.5)
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    whole.mkdir(), resumed.mkdir()
    reference = segment_slide(project, slide, whole, get_registry())
    total, predicted[:] = sum(predicted), []
    with pytest.raises(Interrupted):
        segment_slide(project, slide, resumed, get_registry(), progress=stop_after(3))
    done_before = sum(predicted)
    outputs = slide_outputs(slide, resumed)
    assert not any(path.exists() for path in outputs.every())  # nothing under a final name
    assert [p.name for p in resumed.iterdir()] == [".case.segkit-partial"]
    predicted[:] = []
    result = segment_slide(project, slide, resumed, get_registry())
    assert 0 < done_before < total and result.tiles == reference.tiles == total
    assert result.tiles_resumed == done_before and sum(predicted) == total - done_before
    assert (tifffile.imread(result.mask) == tifffile.imread(reference.mask)).all()
    assert sorted(p.name for p in resumed.iterdir()) == sorted(p.name for p in outputs.every())


def test_a_checkpoint_of_another_model_is_thrown_away_and_the_slide_starts_over(
        tmp_path: Path, slide: Path, predicted: list[int]) -> None:
    project = colour_project(tmp_path / "project", 0.5)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(Interrupted):
        segment_slide(project, slide, out, get_registry(), progress=stop_after(2))
    predicted[:] = []
    result = segment_slide(project, slide, out, get_registry(), model_digest="another model")
    assert result.tiles_resumed == 0 and sum(predicted) == result.tiles


def test_a_stop_before_the_first_checkpoint_leaves_the_folder_as_it_was(
        tmp_path: Path, slide: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = colour_project(tmp_path / "project", 0.5)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(slide_resume, "CHECKPOINT_SECONDS", 3600.0)
    with pytest.raises(Interrupted):
        segment_slide(project, slide, out, get_registry(), progress=stop_after(2))
    assert list(out.iterdir()) == []


def test_a_killed_checkpoint_keeps_the_one_before(tmp_path: Path, slide: Path, predicted: list[int],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A process killed while it writes a checkpoint's state resumes from the previous checkpoint."""
    project = colour_project(tmp_path / "project", 0.5)
    out = tmp_path / "out"
    out.mkdir()
    real_save = slide_resume.SlideCheckpoints.save
    saves: list[int] = []

    def dying_save(self: slide_resume.SlideCheckpoints, tiles_done: int, sync: Any, write_state: Any) -> None:
        saves.append(tiles_done)
        if len(saves) == 3:  # the state is written, then the "kill" comes before the journal
            def write_then_die(folder: Path) -> None:
                write_state(folder)
                raise Interrupted
            return real_save(self, tiles_done, sync, write_then_die)
        return real_save(self, tiles_done, sync, write_state)

    monkeypatch.setattr(slide_resume.SlideCheckpoints, "save", dying_save)
    with pytest.raises(Interrupted):
        segment_slide(project, slide, out, get_registry())
    monkeypatch.setattr(slide_resume.SlideCheckpoints, "save", real_save)
    predicted[:] = []
    result = segment_slide(project, slide, out, get_registry())
    assert result.tiles_resumed == saves[1] and sum(predicted) == result.tiles - saves[1]
    reference = tmp_path / "reference"
    reference.mkdir()
    again = segment_slide(project, slide, reference, get_registry())
    assert (tifffile.imread(result.mask) == tifffile.imread(again.mask)).all()
    assert np.array_equal(np.asarray(tifffile.imread(result.mask).shape), (320, 384))


def test_a_resumed_slide_writes_the_nuclei_an_uninterrupted_one_writes(tmp_path: Path,
                                                                        predicted: list[int]) -> None:
    """The nuclei sink's pending rows and part files survive the interrupt: the resumed slide's GeoJSON
    and table hold the same nuclei (ids, classes, outlines, measures; only the random uuids differ)."""
    import geojson
    import pyarrow.parquet as pq

    from test_slide_nuclei import nuclei_project, seam_picture

    slide = tmp_path / "seams.svs"
    write_pyramid(slide, seam_picture(1), style="aperio", microns_per_pixel=0.5, tile=64, levels=2)
    project = nuclei_project(tmp_path / "project", 0.5)
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    whole.mkdir(), resumed.mkdir()
    batches: list[int] = []
    reference = segment_slide(project, slide, whole, get_registry(), progress=lambda done, total: batches.append(done))
    stop = len(batches) - 2  # after the first strip of nuclei is written, before the last ones
    with pytest.raises(Interrupted):
        segment_slide(project, slide, resumed, get_registry(), progress=stop_after(stop))
    partial = resumed / ".seams.segkit-partial"
    assert (partial / f"state-{stop}" / "sink-1").is_dir()
    assert [p.name for p in (partial / "nuclei-parts").iterdir()], sorted(str(p) for p in partial.rglob("*"))
    predicted[:] = []
    result = segment_slide(project, slide, resumed, get_registry())
    assert result.tiles_resumed > 0 and sum(predicted) == result.tiles - result.tiles_resumed
    assert result.nuclei == reference.nuclei == len(SEAMS) and result.nuclei_per_class == reference.nuclei_per_class

    def features(path: Path) -> list[Any]:
        return [(f["geometry"], {k: v for k, v in f["properties"].items()})
                for f in geojson.loads(path.read_text())["features"]]

    assert result.outputs.detections is not None and reference.outputs.detections is not None
    assert features(result.outputs.detections) == features(reference.outputs.detections)
    assert result.outputs.table is not None and reference.outputs.table is not None
    tables = [pq.read_table(path).drop(["uuid"]).to_pylist() for path in (result.outputs.table, reference.outputs.table)]
    assert tables[0] == tables[1] and len(tables[0]) == len(SEAMS)
    assert sorted(p.name for p in resumed.iterdir()) == sorted(p.name for p in result.outputs.every())


from test_slide_nuclei import SEAM_CENTRES as SEAMS  # noqa: E402
