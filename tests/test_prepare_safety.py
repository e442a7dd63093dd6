"""``segkit prepare`` deletes only what it wrote and never leaves half an output.

Before: ``--option overwrite=true`` deleted every PNG in the split folders, the user's own too; a
TIFF whose header read but whose pixels did not left a half-written output that the rerun refused
as "not empty"; ``--option seed=-1`` was an internal error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_results import single_error_line, snapshot
from typer.testing import CliRunner, Result
from ucsb_miniature import make_ucsb

from segkit.cli.main import app
from segkit.data import prepared_output
from segkit.data.prepared_output import MANIFEST

runner = CliRunner()


def prepare(source: Path, out: Path, *options: str) -> Result:
    args = ["prepare", "ucsb-bcc", str(source), "--out", str(out)]
    return runner.invoke(app, args + [item for option in options for item in ("--option", option)])


def siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir())


@pytest.fixture
def source(tmp_path: Path) -> Path:
    make_ucsb(tmp_path / "ucsb")
    return tmp_path / "ucsb"


def damage(source: Path) -> None:
    """Cut a TIFF in half: its header still reads, its pixels do not."""
    tiff = source / "Images" / "ytma49_042003_malignant2_ccd.tif"
    tiff.write_bytes(tiff.read_bytes()[: tiff.stat().st_size // 2])


def test_the_manifest_lists_every_file_written(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert prepare(source, out).exit_code == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["written_by"] == "segkit prepare ucsb-bcc"
    assert sorted(manifest["files"]) == sorted(set(snapshot(out)) - {MANIFEST})
    assert len([f for f in manifest["files"] if f.endswith(".png")]) == 16


def test_overwrite_replaces_an_earlier_preparation_and_keeps_the_users_other_files(
    source: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert prepare(source, out, "seed=1").exit_code == 0
    (out / "notes.txt").write_text("mine")
    result = prepare(source, out, "seed=2", "overwrite=true")
    assert result.exit_code == 0, result.output
    assert "overwrite: replaced the 18 file(s) of an earlier preparation" in result.output
    record = json.loads((out / "split.json").read_text())
    written = {p.stem for p in out.glob("*/images/*.png")}
    assert record["seed"] == 2 and len(written) == 8  # no core left behind in its seed-1 split
    for split, stems in record["splits"].items():
        assert sorted(p.stem for p in (out / split / "images").glob("*.png")) == stems
    assert (out / "notes.txt").read_text() == "mine" and siblings(out) == ["out", "ucsb"]


def test_overwrite_refuses_a_png_it_did_not_write_and_changes_nothing(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert prepare(source, out).exit_code == 0
    user_png = out / "train" / "images" / "my_annotation.png"
    user_png.write_bytes(b"the user's own work\n")
    before = snapshot(out)
    line = single_error_line(prepare(source, out, "overwrite=true", "seed=3"))
    assert line.startswith(f"error: {user_png}: was not written by segkit prepare (its {MANIFEST} does not "
                           "list it), so overwrite would lose it; move it out of "), line
    assert snapshot(out) == before and siblings(out) == ["out", "ucsb"]


def test_overwrite_refuses_a_folder_no_preparation_wrote(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "test" / "masks").mkdir(parents=True)
    (out / "test" / "masks" / "a.png").write_bytes(b"mine")
    (out / "test" / "masks" / "b.png").write_bytes(b"mine too")
    line = single_error_line(prepare(source, out, "overwrite=true"))
    assert line.startswith(f"error: {out / 'test' / 'masks' / 'a.png'} (and 1 more): was not written"), line
    assert snapshot(out) == {"test/masks/a.png": b"mine", "test/masks/b.png": b"mine too"}


def test_a_damaged_tiff_leaves_nothing_and_the_rerun_works(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    damage(source)
    line = single_error_line(prepare(source, out))
    assert "ytma49_042003_malignant2_ccd.tif: cannot be read as an image" in line, line
    assert siblings(out) == ["ucsb"]  # no output, no staging folder
    make_ucsb(tmp_path / "fixed")
    assert prepare(tmp_path / "fixed", out).exit_code == 0  # not refused as "not empty"


def test_a_damaged_tiff_keeps_the_previous_complete_output(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert prepare(source, out).exit_code == 0
    before = snapshot(out)
    damage(source)
    single_error_line(prepare(source, out, "overwrite=true", "seed=5"))
    assert snapshot(out) == before and siblings(out) == ["out", "ucsb"]


def test_a_failed_swap_puts_the_previous_output_back(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    assert prepare(source, out).exit_code == 0
    before = snapshot(out)
    real_rename, calls = Path.rename, []

    def rename_failing_on_the_third_new_entry(self: Path, target: Path) -> Path:
        calls.append(self)
        if ".segkit-prepare-staging" in str(self) and sum("staging" in str(c) for c in calls) == 3:
            raise OSError(28, "No space left on device", str(target))
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename_failing_on_the_third_new_entry)
    result = prepare(source, out, "overwrite=true", "seed=9")
    assert result.exit_code == 2, result.output
    monkeypatch.undo()
    assert snapshot(out) == before and siblings(out) == ["out", "ucsb"]


def test_a_staging_folder_left_by_a_kill_is_cleared(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    staging = tmp_path / ".out.segkit-prepare-staging"
    (staging / "train").mkdir(parents=True)
    (staging / prepared_output.STAGING_MARK).touch()
    assert prepare(source, out).exit_code == 0
    assert siblings(out) == ["out", "ucsb"]


@pytest.mark.parametrize(("seed", "problem"), [("-1", "must be at least 0, got -1"),
                                               ("4294967296", "must be at most")])
def test_a_seed_out_of_range_is_one_line(source: Path, tmp_path: Path, seed: str, problem: str) -> None:
    line = single_error_line(prepare(source, tmp_path / "out", f"seed={seed}"))
    assert line.startswith("error: segkit prepare ucsb-bcc: option.seed: " + problem), line
    assert siblings(tmp_path / "out") == ["ucsb"]


def test_a_folder_named_like_a_tiff_is_named_itself(source: Path, tmp_path: Path) -> None:
    (source / "Images" / "ytma10_010704_benign1_ccd.tif").unlink()
    (source / "Images" / "ytma10_010704_benign1_ccd.tif").mkdir()
    line = single_error_line(prepare(source, tmp_path / "out"))
    assert line.startswith(f"error: {source / 'Images' / 'ytma10_010704_benign1_ccd.tif'}: is a folder"), line
