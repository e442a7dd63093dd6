"""Slide output names, the slide record that marks a slide complete, the slide table, fold folders."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from segkit.cv.layout import fold_folder, trained_folds
from segkit.run_folder import BEST_MODEL
from segkit.slides.outputs import slide_complete, slide_outputs, slide_stem, write_slide_record
from segkit.slides.summary import write_summary


def test_stems_and_names(tmp_path: Path) -> None:
    assert slide_stem(Path("a.b.svs")) == "a.b" and slide_stem(Path("x.OME.TIFF")) == "x"
    plain = slide_outputs(Path("s/x.ome.tif"), tmp_path)
    assert [p.name for p in plain.every()] == ["x.tissue.png", "x.mask.ome.tif", "x.slide.json"]
    nuclei = slide_outputs(Path("x.svs"), tmp_path, nuclei=True, compress_geojson=True, parquet=False)
    assert [p.name for p in nuclei.products()] == ["x.tissue.png", "x.mask.ome.tif", "x.nuclei.geojson.gz",
                                                   "x.nuclei.csv"]


def test_record_marks_complete_only_for_its_model_and_outputs(tmp_path: Path) -> None:
    outputs = slide_outputs(Path("x.svs"), tmp_path)
    for path in outputs.products():
        path.write_bytes(b"1")
    assert not slide_complete(outputs, "abc")  # no record yet
    write_slide_record(outputs, {"slide": "x.svs", "tiles": 3}, "abc")
    assert slide_complete(outputs, "abc")
    assert not slide_complete(outputs, "other model")
    outputs.mask.unlink()
    assert not slide_complete(outputs, "abc")
    outputs.record.write_text("{not json")
    assert not slide_complete(outputs, "abc")


def test_summary_unites_columns(tmp_path: Path) -> None:
    rows = [{"slide": "a", "nuclei": 2, "nuclei_tumour": 2}, {"slide": "b", "nuclei": 1, "status": "failed"}]
    written = write_summary(tmp_path / "slides.csv", rows)
    with (tmp_path / "slides.csv").open() as handle:
        read = list(csv.DictReader(handle))
    assert list(read[0]) == ["slide", "nuclei", "nuclei_tumour", "status"]
    assert [r["nuclei_tumour"] for r in read] == ["2", ""] and read[1]["status"] == "failed"
    assert pq.read_table(written[1]).column("nuclei").to_pylist() == [2, 1]


def test_fold_folders(tmp_path: Path) -> None:
    assert fold_folder(tmp_path, 3) == tmp_path / "fold_3"
    with pytest.raises(ValueError):
        fold_folder(tmp_path, -1)
    for fold in (0, 2, 10):
        (fold_folder(tmp_path, fold) / BEST_MODEL).parent.mkdir(parents=True)
        (fold_folder(tmp_path, fold) / BEST_MODEL).write_bytes(b"")
    (tmp_path / "fold_1").mkdir()  # not trained yet
    (tmp_path / "fold_x").mkdir()
    assert trained_folds(tmp_path) == [0, 2, 10] and trained_folds(tmp_path / "none") == []


def test_which_files_are_slides(tmp_path: Path) -> None:
    import numpy as np
    import tifffile
    from PIL import Image

    from segkit.plugins import get_registry
    from segkit.slides.listing import is_slide, list_slides
    from slide_files import write_pyramid

    picture = np.full((512, 512, 3), 200, np.uint8)
    write_pyramid(tmp_path / "aperio.svs", picture, style="aperio", tile=128, levels=3)
    write_pyramid(tmp_path / "scan.tif", picture, style="aperio", tile=128, levels=3)
    write_pyramid(tmp_path / "ome.ome.tif", picture, style="ome", tile=128, levels=2)
    tifffile.imwrite(tmp_path / "flat.tif", picture)  # an image, read whole
    tifffile.imwrite(tmp_path / "tiled-one-level.tif", picture, tile=(128, 128))
    Image.fromarray(picture).save(tmp_path / "tile.png")
    (tmp_path / "notes.txt").write_text("no slide")
    (tmp_path / "fake.tif").write_bytes(b"II*\0 truncated")
    registry = get_registry()
    assert [p.name for p in list_slides(tmp_path, registry)] == ["aperio.svs", "ome.ome.tif", "scan.tif"]
    assert not is_slide(tmp_path / "missing.svs", registry)
