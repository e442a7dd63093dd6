"""``segkit init NAME``: a commented project file that validates, and the empty dataset layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from segkit.cli.main import app
from segkit.project import load_project
from tiny_data import write_split

runner = CliRunner()
SPLITS = ("test", "train", "valid")
LAYOUT = ["data/infer", *(f"data/{split}" for split in SPLITS),
          *(f"data/{split}/{kind}" for split in SPLITS for kind in ("images", "masks"))]


def init(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["init", *args])
    return result.exit_code, result.output


def test_init_writes_a_commented_project_that_loads(tmp_path: Path) -> None:
    code, output = init("lung", "--dir", str(tmp_path), "--classes", "background:0,0,0", "--classes", "tumour:255,0,0",
                        "--classes", "stroma:0,0,255", "--size", "128")
    assert code == 0, output
    folder = tmp_path / "lung"
    project = load_project(folder / "project.toml")
    assert project.name == "lung"
    assert [(c.name, c.color) for c in project.classes.classes] == [
        ("background", (0, 0, 0)), ("tumour", (255, 0, 0)), ("stroma", (0, 0, 255))]
    assert (project.model.name, project.model.image_width, project.model.image_height) == ("flexunet", 128, 128)
    assert project.model.options["num_layers"] == 6
    assert project.dataset.options["train"]["images"] == (folder / "data" / "train" / "images").resolve()
    assert project.infer.images == (folder / "data" / "infer").resolve()
    assert project.output_dir == (folder / "runs" / "lung").resolve()
    assert sorted(str(p.relative_to(folder)) for p in (folder / "data").rglob("*")) == sorted(LAYOUT)
    assert not any(p.is_file() for p in (folder / "data").rglob("*"))
    text = (folder / "project.toml").read_text()
    assert sum(line.lstrip().startswith("#") for line in text.splitlines()) >= 10
    assert "# ignore_color" in text and "tensorboard = false" in text


def test_defaults_and_the_size_choose_the_depth(tmp_path: Path) -> None:
    code, output = init("small", "--dir", str(tmp_path), "--size", "48")
    assert code == 0, output
    project = load_project(tmp_path / "small" / "project.toml")
    assert project.classes.names == ("background", "foreground")
    assert project.model.options["num_layers"] == 5  # 48 divides by 16 = 2**(5-1), not by 32


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    assert init("p", "--dir", str(tmp_path))[0] == 0
    project = tmp_path / "p" / "project.toml"
    project.write_text(project.read_text() + "# my edits\n")
    (tmp_path / "p" / "data" / "train" / "images" / "keep.png").write_bytes(b"x")
    code, output = init("p", "--dir", str(tmp_path))
    assert code == 2
    expected = f"error: {project}: already exists (pass --force to overwrite it; the data folders are kept)"
    assert output.strip() == expected
    assert project.read_text().endswith("# my edits\n")
    assert init("p", "--dir", str(tmp_path), "--force")[0] == 0
    assert "# my edits" not in project.read_text()
    assert (tmp_path / "p" / "data" / "train" / "images" / "keep.png").read_bytes() == b"x"


@pytest.mark.parametrize(("args", "message"), [
    (["--classes", "tumour"], "--classes tumour: expected NAME:R,G,B with channels 0..255"),
    (["--classes", "a:1,2,300", "--classes", "b:0,0,0"], "--classes a:1,2,300: expected NAME:R,G,B"),
    (["--classes", "only:0,0,0"], "--classes: needs at least 2 classes (background first), got 1"),
    (["--size", "100"], "--size: 100 must be a multiple of 16, at least 32"),
])
def test_bad_flags_are_one_line_errors_and_write_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    code, output = init("x", "--dir", str(tmp_path), *args)
    assert code == 2 and message in output and len(output.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_unusable_name_is_refused(tmp_path: Path) -> None:
    code, output = init("../escape", "--dir", str(tmp_path))
    assert code == 2 and "'../escape' is not a usable folder name" in output


def test_scaffold_trains_once_pairs_are_added(tmp_path: Path) -> None:
    assert init("blobs", "--dir", str(tmp_path), "--classes", "background:0,0,0", "--classes", "benign:0,255,0",
                "--classes", "malignant:255,0,0", "--size", "64")[0] == 0
    data = tmp_path / "blobs" / "data"
    for split, count, seed in (("train", 4, 0), ("valid", 2, 100), ("test", 2, 200)):
        write_split(data / split, count, seed)
    small = ["--set", "train.epochs=1", "--set", "model.base_filters=4", "--set", "model.num_layers=3"]
    result = runner.invoke(app, ["train", str(tmp_path / "blobs" / "project.toml"), "--quiet", *small])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "blobs" / "runs" / "blobs" / "models" / "best_model.keras").exists()


def test_init_picks_crop_mode_for_images_much_larger_than_the_size(tmp_path: Path) -> None:
    from PIL import Image

    images = tmp_path / "slides" / "data" / "train" / "images"
    images.mkdir(parents=True)
    Image.new("RGB", (333, 517)).save(images / "big.png")
    (images / "broken.png").write_bytes(b"not a png")  # unreadable files are left to stats and train
    code, output = init("slides", "--dir", str(tmp_path), "--size", "64")
    assert code == 0, output
    assert output.splitlines()[1] == ("note: the images are up to 333x517, more than 2x --size 64: wrote [augment] "
                                      "crop = true (train on 64-px crops, segment at full resolution) instead of "
                                      "squashing them")
    assert load_project(tmp_path / "slides" / "project.toml").augment.crop is True
    code, output = init("slides", "--dir", str(tmp_path), "--size", "512", "--force")  # within 2x: resize
    assert code == 0 and "note:" not in output, output
    assert load_project(tmp_path / "slides" / "project.toml").augment.crop is False


def test_init_without_data_writes_resize_mode(tmp_path: Path) -> None:
    assert init("empty", "--dir", str(tmp_path))[0] == 0
    text = (tmp_path / "empty" / "project.toml").read_text()
    assert "\ncrop = false  " in text
    assert load_project(tmp_path / "empty" / "project.toml").augment.crop is False
