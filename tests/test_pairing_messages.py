"""Each file named by its own problem, quoted so that its name cannot split or forge a message.

A folder, a broken link or a link loop named like an image used to be left out silently, so the
error named its partner on the other side (``masks without an image``); a newline in a name split
the one-line error in two. A symbolic link loop as a data folder ended in ``RuntimeError``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from cli_results import invoke, single_error_line
from tiny_data import write_tiny_project

from segkit.data import images
from segkit.data.names import shown_path


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return write_tiny_project(tmp_path / "p", epochs=1)


def train_images(project: Path) -> Path:
    return project.parent / "data" / "train" / "images"


def replace_with(path: Path, kind: str) -> None:
    """Put a folder, a broken link or a link loop where the image file ``path`` was."""
    path.unlink()
    if kind == "folder":
        path.mkdir()
    elif kind == "broken link":
        path.symlink_to(path.parent / "gone" / "nothing.png")
    else:
        path.symlink_to(path.name)  # a link to itself


@pytest.mark.parametrize(("kind", "problem"), [
    ("folder", "is a folder, not an image file"),
    ("broken link", r"is a broken symbolic link \(its target \S+/gone/nothing\.png does not exist"),
    ("loop", "is a symbolic link loop"),
])
@pytest.mark.parametrize("side", ["images", "masks"])
def test_train_names_the_entry_itself_not_its_partner(project: Path, kind: str, problem: str, side: str) -> None:
    folder = project.parent / "data" / "train" / side
    replace_with(folder / "img_03.png", kind)
    line = single_error_line(invoke("train", project))
    assert line.startswith(f"error: {folder / 'img_03.png'}: "), line
    assert re.search(problem, line), line
    assert "without a mask" not in line and "without an image" not in line, line  # not the partner
    assert not (project.parent / "run").exists()


def test_a_file_that_is_no_image_is_named_itself(project: Path) -> None:
    mask = project.parent / "data" / "train" / "masks" / "img_05.png"
    mask.write_text("not a picture\n")
    line = single_error_line(invoke("train", project))
    assert line == (f"error: {mask}: cannot be read as an image (not a format Pillow recognises, or a damaged "
                    "header); re-export it or remove it from the folder")


def test_an_unreadable_file_says_permission_denied(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # chmod cannot take read access from root (which runs CI here); refuse the open the way the OS would
    locked = train_images(project) / "img_02.png"
    real_open = images.Image.open

    def open_refusing_one_file(path: Path, *args: object, **kwargs: object) -> object:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(images.Image, "open", open_refusing_one_file)
    line = single_error_line(invoke("train", project))
    assert line == (f"error: {locked}: cannot be read (permission denied; give yourself read access or "
                    "remove it from the folder)")


def test_newline_in_a_name_stays_one_quoted_line(project: Path) -> None:
    images = train_images(project)
    (images / "img_00.png").rename(images / "a\nerror: forged.png")
    (project.parent / "data" / "train" / "masks" / "img_00.png").unlink()
    result = invoke("train", project)
    line = single_error_line(result)
    assert line.startswith("error: images without a mask in "), line
    assert line.endswith(": 'a\\nerror: forged.png' (masks pair with images by file stem; rename or remove these)")
    assert "forged.png" not in result.output.replace(line, "")


def test_stats_lists_the_entry_as_a_problem_and_keeps_the_rest(project: Path, tmp_path: Path) -> None:
    replace_with(train_images(project) / "img_03.png", "folder")
    report = tmp_path / "stats.json"
    result = invoke("stats", project, "--json", report)
    assert result.exit_code == 0, result.output
    train = json.loads(report.read_text())["splits"][0]
    assert train["problems"] == [{"file": "images/img_03.png", "reason": "is a folder, not an image file "
                                  "(move it out of the folder, or drop the image suffix from its name)"}]
    assert (train["images"], train["masks"], train["pairs"]) == (7, 8, 7)


@pytest.mark.parametrize("command", ["train", "stats"])
def test_a_data_folder_that_is_a_link_loop_is_one_line(project: Path, command: str) -> None:
    images = project.parent / "data" / "valid" / "images"
    for path in images.iterdir():
        path.unlink()
    images.rmdir()
    images.symlink_to("images")
    line = single_error_line(invoke(command, project))
    assert line == (f"error: {images}: is a symbolic link loop (the link leads back to itself); "
                    "fix or remove the link")


def test_stats_on_a_folder_reports_a_looping_split_folder(project: Path, tmp_path: Path) -> None:
    masks = project.parent / "data" / "test" / "masks"
    for path in masks.iterdir():
        path.unlink()
    masks.rmdir()
    os.symlink("masks", masks)
    report = tmp_path / "stats.json"
    result = invoke("stats", project.parent / "data", "--json", report)
    assert result.exit_code == 0, result.output
    test_split = next(s for s in json.loads(report.read_text())["splits"] if s["name"] == "test")
    assert test_split["problems"] == [{"file": str(masks), "reason": "is a symbolic link loop (the link "
                                       "leads back to itself); fix or remove the link"}]


def test_stats_target_that_is_a_link_loop(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    assert single_error_line(invoke("stats", loop)) == (
        f"error: {loop}: is a symbolic link loop (the link leads back to itself); fix or remove the link")


@pytest.mark.parametrize(("name", "shown"), [
    ("img_00.png", "img_00.png"),
    ("caf\udce9.png", "caf\\xe9.png"),  # a Latin-1 byte kept by surrogateescape: escaped, as before
    ("a\nerror: b.png", "'a\\nerror: b.png'"),
    ("red\x1b[31m.png", "'red\\x1b[31m.png'"),
    ("abc\u202egnp.exe", "'abc\\u202egnp.exe'"),  # a right-to-left override would reverse the rest
    ("back\\slash.png", "'back\\\\slash.png'"),
    ("it's.png", "'it\\'s.png'"),
    (" lead.png", "' lead.png'"),
    ("résumé.png", "résumé.png"),
])
def test_shown_path_quotes_only_names_that_need_it(name: str, shown: str) -> None:
    assert shown_path(name) == shown
