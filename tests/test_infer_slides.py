"""``segkit infer`` on slides: beside images, into the masks folder, skipped when done, one line per bad input."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest
import tifffile
from PIL import Image

from segkit.data.images import read_image
from segkit.engine import infer as infer_engine
from segkit.engine import slide_plan
from segkit.engine.best_model import model_file_digest
from segkit.engine.slide_infer import SlideResult, segment_slide
from segkit.plugins import get_registry
from cli_results import invoke, single_error_line, snapshot
from slide_files import spoil_tile, synthetic_slide, write_pyramid
from test_slide_infer import colour_project, nearest_colour
from tiny_data import blob_pair

MANIFEST = ".segkit-outputs.json"
SLIDE_NAMES = ["case.mask.ome.tif", "case.slide.json", "case.tissue.png", "slides.csv", "slides.parquet"]


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    image, _, _ = synthetic_slide(320, 256, seed=5, tile=64, margin=64)
    return image


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return colour_project(tmp_path_factory.mktemp("colour"), 0.5)


@pytest.fixture(scope="module")
def direct(tmp_path_factory: pytest.TempPathFactory, project: Any, picture: np.ndarray
           ) -> tuple[SlideResult, np.ndarray]:
    """The slide of :func:`inputs` segmented by segment_slide itself, and its mask's level 0."""
    folder = tmp_path_factory.mktemp("direct")
    write_pyramid(folder / "case.svs", picture, style="aperio", microns_per_pixel=0.5, tile=64, levels=3)
    (folder / "out").mkdir()
    result = segment_slide(project, folder / "case.svs", folder / "out", get_registry())
    return result, tifffile.imread(result.mask)


@pytest.fixture
def inputs(tmp_path: Path, picture: np.ndarray) -> Path:
    """A folder of one slide (case.svs) and one image (blob.png)."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    write_pyramid(folder / "case.svs", picture, style="aperio", microns_per_pixel=0.5, tile=64, levels=3)
    Image.fromarray(blob_pair(3)[0]).save(folder / "blob.png")
    return folder


def table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def manifest(folder: Path) -> list[str]:
    return json.loads((folder / MANIFEST).read_text())["written"]


def test_a_folder_of_a_slide_and_an_image_gives_the_mask_png_and_the_slides_outputs_and_table(
        project: Any, inputs: Path, tmp_path: Path, direct: tuple[SlideResult, np.ndarray]) -> None:
    out = tmp_path / "masks"
    result = invoke("infer", project.source, inputs, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"1 masks → {out}; overlays → {tmp_path / 'masks_overlay'}",
        f"1 slide(s) → {out}; table → {out / 'slides.csv'}"]
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, "blob.png", *SLIDE_NAMES])
    assert manifest(out) == sorted(["blob.png", *SLIDE_NAMES])
    classes, decided = nearest_colour(read_image(inputs / "blob.png", 3))
    written = np.asarray(Image.open(out / "blob.png").convert("RGB"))
    assert (written[decided] == project.classes.colorize(classes)[decided]).all() and len(np.unique(classes)) > 1
    expected, level_0 = direct
    np.testing.assert_array_equal(tifffile.imread(out / "case.mask.ome.tif"), level_0)
    rows = table(out / "slides.csv")
    assert len(rows) == 1 and rows[0]["slide"] == str(inputs / "case.svs") and rows[0]["region"] == ""
    assert (int(rows[0]["tiles"]), float(rows[0]["tissue_mm2"])) == (expected.tiles, round(expected.tissue_mm2, 6))
    assert expected.tiles > 4 and set(np.unique(level_0)) == {0, 1, 2}
    record = json.loads((out / "case.slide.json").read_text())
    assert record["model_sha256"] == model_file_digest(project)


def test_a_rerun_skips_the_finished_slide_without_the_model_and_a_changed_model_redoes_it(
        project: Any, inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "masks"
    slide = inputs / "case.svs"
    first = invoke("infer", project.source, slide, "--out", out)
    assert first.exit_code == 0, first.output
    bars = [line for line in first.output.splitlines() if line.startswith("case.svs ")]
    tiles = int(table(out / "slides.csv")[0]["tiles"])
    assert len(bars) == 1 and f" {tiles}/{tiles} tiles " in bars[0] and " left " in bars[0], first.output
    record, first_table = out / "case.slide.json", table(out / "slides.csv")
    made = record.stat().st_mtime_ns, record.read_bytes()

    def no_model(*args: object) -> None:
        raise AssertionError("the model was loaded for a finished slide")

    monkeypatch.setattr(infer_engine, "load_run_model", no_model)
    again = invoke("infer", project.source, slide, "--out", out)
    assert again.exit_code == 0, again.output
    assert again.output.splitlines() == [
        f"note: '{slide}': already segmented by this model; skipped",
        f"1 slide(s) (1 already done, skipped) → {out}; table → {out / 'slides.csv'}"]
    assert (record.stat().st_mtime_ns, record.read_bytes()) == made and table(out / "slides.csv") == first_table
    monkeypatch.undo()
    retrained = project.output_dir / "models" / "best_model.keras"
    original = retrained.read_bytes()
    try:
        _nudge_model(retrained)
        redone = invoke("infer", project.source, slide, "--out", out, "--quiet")
        assert redone.exit_code == 0, redone.output
        assert json.loads(record.read_text())["model_sha256"] == model_file_digest(project) != json.loads(made[1])[
            "model_sha256"]
        assert record.stat().st_mtime_ns != made[0] and int(table(out / "slides.csv")[0]["tiles"]) > 4
    finally:
        retrained.write_bytes(original)


def _nudge_model(path: Path) -> None:
    """The colour model with its biases moved by 1e-3: another model file, the same classes."""
    import keras

    model = keras.saving.load_model(path, compile=False)
    kernel, bias = model.layers[0].get_weights()
    model.layers[0].set_weights([kernel, bias + 1e-3])
    model.save(path)


def test_a_slide_without_a_pixel_size_is_one_line_until_one_is_given(
        project: Any, picture: np.ndarray, tmp_path: Path) -> None:
    bare = tmp_path / "bare.svs"
    write_pyramid(bare, picture[:128, :128], style="aperio", microns_per_pixel=None, tile=64, levels=2)
    out = tmp_path / "masks"
    line = single_error_line(invoke("infer", project.source, bare, "--out", out))
    assert line == (f"error: {bare}: the slide's metadata holds no pixel size (pass --microns-per-pixel with the "
                    "scanner's µm per pixel)")
    assert not out.exists()
    given = invoke("infer", project.source, bare, "--out", out, "--microns-per-pixel", "0.5", "--quiet")
    assert given.exit_code == 0, given.output
    assert tifffile.imread(out / "bare.mask.ome.tif").shape == (128, 128)


def _region_lines(project: Any, inputs: Path, out: Path) -> list[str]:
    slide = inputs / "case.svs"
    shutil.copy(slide, inputs / "other.svs")
    return [single_error_line(invoke("infer", project.source, *args, "--out", out)) for args in [
        (slide, "--region", "0,0,999,10"), (slide, "--region", "1,2,3"), (inputs, "--region", "0,0,64,64")]]


def test_a_region_outside_the_slide_malformed_or_of_two_slides_is_one_line(
        project: Any, inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "masks"
    outside, malformed, two = _region_lines(project, inputs, out)
    assert outside == (f"error: {inputs / 'case.svs'}: region x=0, y=0, 999x10 is outside the slide, which is 320x256 "
                       "pixels at level 0 (give x,y,w,h with w and h at least 1 that lie within it)")
    assert malformed == ("error: --region: '1,2,3' is not x,y,w,h (give four whole numbers in level-0 pixels, x and y "
                         "at least 0, w and h at least 1, e.g. --region 0,0,4096,4096)")
    assert two == ("error: --region: a region is of one slide, and this call has 2 slides (give exactly one slide "
                   "with --region, or leave --region out)")
    assert not out.exists()


def test_a_region_segments_only_its_part_and_its_row_says_so(project: Any, inputs: Path, tmp_path: Path,
                                                             direct: tuple[SlideResult, np.ndarray]) -> None:
    out = tmp_path / "masks"
    result = invoke("infer", project.source, inputs / "case.svs", "--out", out, "--region", "64,64,128,96", "--quiet")
    assert result.exit_code == 0, result.output
    mask = tifffile.imread(out / "case.mask.ome.tif")
    assert mask.shape == (256, 320) and not mask[:64].any() and not mask[:, :64].any()
    assert mask[64:160, 64:192].any() and not mask[160 + 64:].any()
    assert table(out / "slides.csv")[0]["region"] == "64,64,128,96"
    # the tissue area is the region's: at most its 128 x 96 px of 0.5 µm, less than the slide's
    assert 0 < float(table(out / "slides.csv")[0]["tissue_mm2"]) <= 128 * 96 * 0.25 / 1e6 < direct[0].tissue_mm2


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("noise.svs", bytes(range(256)) * 64, "not a slide any installed reader opens ("),
    ("scan.czi", bytes(range(256)) * 64, "is not an image (.png .jpg .jpeg .tif .tiff .bmp) or a slide an installed "
                                         "reader opens; give image or slide files or folders of them"),
])
def test_a_file_that_is_no_slide_or_an_unsupported_container_is_one_line(
        project: Any, tmp_path: Path, name: str, content: bytes, problem: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "masks"
    line = single_error_line(invoke("infer", project.source, path, "--out", out))
    shown = f"'{path}'" if name.endswith(".czi") else str(path)
    assert line.startswith(f"error: {shown}: {problem}"), line
    assert not out.exists()


def test_a_slide_of_glass_a_model_without_a_pixel_size_and_a_full_disk_are_one_line_each(
        project: Any, inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blank = tmp_path / "blank.svs"
    write_pyramid(blank, np.full((256, 320, 3), 255, np.uint8), style="aperio", tile=64, levels=3)
    out = tmp_path / "masks"
    glass = single_error_line(invoke("infer", project.source, blank, "--out", out))
    assert glass.startswith(f"error: {blank}: no tissue found on level 2 (80x64 px"), glass
    unknown = colour_project(tmp_path / "unknown", None)
    unset = single_error_line(invoke("infer", unknown.source, inputs, "--out", out))
    assert unset == (f"error: {unknown.source}: model.microns_per_pixel: not set, so the level a slide is read at is "
                     "unknown (set it to the µm per pixel of the images the model was trained on)")
    monkeypatch.setattr(slide_plan.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 50_000))
    full = single_error_line(invoke("infer", project.source, inputs, "--out", out))
    assert full == (f"error: {out}: the disk has 0.0477 MiB free and the mask of 'case.svs' needs 0.104 MiB of scratch "
                    "space while it is made (free space on that disk or choose another output folder)")
    assert not out.exists() and not (tmp_path / "masks_overlay").exists()


def test_an_image_and_a_slide_of_one_stem_are_refused(project: Any, inputs: Path, tmp_path: Path) -> None:
    image = tmp_path / "case.png"
    shutil.copy(inputs / "blob.png", image)
    line = single_error_line(invoke("infer", project.source, image, inputs / "case.svs", "--out", tmp_path / "masks"))
    assert line == (f"error: '{image}' and '{inputs / 'case.svs'}': an image and a slide of one stem, 'case'; rename "
                    "one, or segment them into separate output folders")
    assert not (tmp_path / "masks").exists()


def test_a_truncated_slide_or_a_tile_that_does_not_decode_is_one_line_and_leaves_no_output_of_it(
        project: Any, inputs: Path, tmp_path: Path) -> None:
    slide = inputs / "case.svs"
    cut = tmp_path / "cut.svs"
    cut.write_bytes(slide.read_bytes()[:-2000])  # the end of the last level's tiles is gone
    line = single_error_line(invoke("infer", project.source, cut, "--out", tmp_path / "masks"))
    assert line.startswith(f"error: {cut}: not a slide any installed reader opens (") and "truncated" in line, line
    assert not (tmp_path / "masks").exists()
    spoil_tile(slide, 0, tile_index=7)  # level 0, row 1 (tiles of 64: 5 a row), within the tissue
    out = tmp_path / "masks"
    out.mkdir()
    (out / "keep.txt").write_text("a user's file")
    line = single_error_line(invoke("infer", project.source, slide, "--out", out))
    assert line.startswith(f"error: {slide}: level 0, region x="), line
    assert "a tile cannot be decoded, the file is truncated or corrupt (" in line
    assert snapshot(out).keys() == {MANIFEST, "keep.txt"}  # no tissue PNG, mask, record, scratch or temporary


#: segkit infer in a fresh process whose slide bar, after the first batch of a slide, says so on stderr and
#: waits: the test then sends SIGTERM, so the signal lands mid-slide on any machine
PAUSED_AFTER_FIRST_BATCH = """
import sys, time
from segkit.report import slide_progress
real = slide_progress.SlideBars.update
def update(self, slide, done, total):
    real(self, slide, done, total)
    if done < total:
        print("mid-slide", file=sys.stderr, flush=True)
        time.sleep(120)
slide_progress.SlideBars.update = update
from segkit.cli.main import main
sys.argv[0] = "segkit"
main()
"""


def _lines_until(stream: IO[str], marker: str) -> list[str]:
    """The lines of ``stream`` up to the first that is ``marker``, or to its end."""
    lines: list[str] = []
    for line in iter(stream.readline, ""):
        lines.append(line)
        if line == f"{marker}\n":
            break
    return lines


def test_sigterm_mid_slide_leaves_no_output_of_it_and_a_rerun_completes(
        project: Any, inputs: Path, tmp_path: Path, direct: tuple[SlideResult, np.ndarray]) -> None:
    import signal

    from segkit_process import start_python

    slide, out = inputs / "case.svs", tmp_path / "masks"
    running = start_python(PAUSED_AFTER_FIRST_BATCH, ["infer", project.source, slide, "--out", out],
                           stderr_apart=True)
    try:
        assert running.stderr is not None
        before = _lines_until(running.stderr, "mid-slide")
    finally:
        running.send_signal(signal.SIGTERM)
        stdout, stderr = running.communicate(timeout=120)
    assert before[-1] == "mid-slide\n", (before, stdout, stderr)
    assert running.returncode == 143, (stdout, stderr)
    assert f"interrupted by SIGTERM while segmenting '{slide}'; 0 of 1 slide(s) were finished" in stdout, stdout
    assert "Traceback" not in stdout + stderr, stderr
    assert snapshot(out).keys() == {MANIFEST}  # no tissue PNG, mask, record, scratch or temporary under any name
    again = invoke("infer", project.source, slide, "--out", out, "--quiet")
    assert again.exit_code == 0, again.output
    np.testing.assert_array_equal(tifffile.imread(out / "case.mask.ome.tif"), direct[1])


def test_a_second_signal_during_the_cleanup_of_an_interrupted_slide_waits_for_its_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import signal
    import time

    from segkit.engine import infer_slides
    from segkit.engine.infer_slides import InferInterrupted, interrupts_raised
    from segkit.slides.outputs import slide_outputs

    outputs = slide_outputs(tmp_path / "case.svs", tmp_path)
    removed: list[str] = []
    real_unlink = Path.unlink

    def unlink_and_press_ctrl_c(self: Path, missing_ok: bool = False) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # handled at the next bytecode: inside the cleanup
        removed.append(self.name)
        real_unlink(self, missing_ok=missing_ok)

    with pytest.raises(InferInterrupted) as caught, interrupts_raised():
        with infer_slides.whole_or_nothing(outputs):
            outputs.tissue.write_bytes(b"written before the first tile")
            outputs.mask.write_bytes(b"half")
            monkeypatch.setattr(Path, "unlink", unlink_and_press_ctrl_c)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)  # interrupted at once
    monkeypatch.undo()
    assert caught.value.signal_name == "SIGTERM"  # the first request; the second one waited and was the same
    assert removed == ["case.tissue.png", "case.mask.ome.tif", "case.slide.json"] and list(tmp_path.iterdir()) == []


def test_sigterm_after_a_checkpoint_keeps_it_and_the_rerun_predicts_only_the_tiles_left(
        project: Any, inputs: Path, tmp_path: Path, direct: tuple[SlideResult, np.ndarray]) -> None:
    import csv
    import signal

    from segkit_process import start_python

    slide, out = inputs / "case.svs", tmp_path / "masks"
    checkpoint_every_batch = "from segkit.engine import slide_resume\nslide_resume.CHECKPOINT_SECONDS = 0.0\n"
    running = start_python(checkpoint_every_batch + PAUSED_AFTER_FIRST_BATCH,
                           ["infer", project.source, slide, "--out", out], stderr_apart=True)
    try:
        assert running.stderr is not None
        _lines_until(running.stderr, "mid-slide")
    finally:
        running.send_signal(signal.SIGTERM)
        stdout, stderr = running.communicate(timeout=120)
    assert running.returncode == 143, (stdout, stderr)
    assert "the unfinished one keeps its last checkpoint" in stdout, stdout
    partial = ".case.segkit-partial"
    assert snapshot(out).keys() == {MANIFEST, f"{partial}/journal.json", f"{partial}/mask.canvas",
                                    f"{partial}/state-1/band.npz"}  # nothing under a final name
    again = invoke("infer", project.source, slide, "--out", out, "--quiet")
    assert again.exit_code == 0, again.output
    with (out / "slides.csv").open() as table:
        row = next(csv.DictReader(table))
    assert 0 < int(row["tiles_resumed"]) < int(row["tiles"]) == direct[0].tiles
    np.testing.assert_array_equal(tifffile.imread(out / "case.mask.ome.tif"), direct[1])
    assert not (out / ".case.segkit-partial").exists()
