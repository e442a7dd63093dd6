"""Names, paths and numbers from a project file that reached code unable to take them.

A ``[/]`` in a name crashed rich's markup, a NUL crashed ``Path``, a control character was written
into ``project.resolved.toml`` so that it no longer parsed, 10**30 reached TensorFlow, and deep
nesting, a BOM or a device as project file ended in tracebacks. Each is now one line, exit 2.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_results import error_line, invoke
from segkit_process import run_segkit
from tiny_data import edit_text

from segkit import toml_io
from segkit.errors import ProjectError, RunStateError
from segkit.options import Option
from segkit.plugins import get_registry
from segkit.project import load_project
from segkit.run_folder import RESOLVED_PROJECT


# --------------------------------------------------------------------------- rich markup (subprocess)

def test_markup_in_names_and_paths_is_printed_as_written(tiny_project: Path) -> None:
    """The announcement line interpolates the project name and the run folder into our markup."""
    edit_text(tiny_project, 'name = "tiny"', 'name = "tiny [/] [bold]x[/bold]"')
    edit_text(tiny_project, 'output_dir = "run"', 'output_dir = "run[/]x"')
    edit_text(tiny_project, 'name = "benign"', 'name = "benign [/]"')
    result = run_segkit(["train", tiny_project, "--resume"], timeout=120)
    lines = result.stdout.splitlines()
    assert lines[0] == f"training tiny [/] [bold]x[/bold] → {tiny_project.parent / 'run[' / ']x'}", result.stdout
    assert "MarkupError" not in result.stdout and "internal error" not in result.stdout, result.stdout
    assert result.returncode == 2, result.stdout  # nothing to resume: one line, as without the brackets


def test_markup_in_a_figures_table_title_is_printed_as_written() -> None:
    from segkit.report.console import console, figures_table

    with console.capture() as captured:
        console.print(figures_table("[/]t [b]", {"loss": 0.5}))
    assert captured.get().splitlines()[0].rstrip() == "[/]t [b]"


# ------------------------------------------------------------------------------ control characters

def test_a_nul_byte_in_a_name_is_one_line(tiny_project: Path) -> None:
    edit_text(tiny_project, 'name = "tiny"', 'name = "ti\\u0000ny"')
    result = run_segkit(["train", tiny_project], timeout=120)
    line = error_line(result.stdout, result.returncode)
    assert line == (f"error: {tiny_project}: project.name: contains the control character \\x00 at position 2 "
                    "(remove it; names and paths must be printable text)")
    assert not (tiny_project.parent / "run").exists()


@pytest.mark.parametrize(("key", "old", "new"), [
    ("classes.1.name", 'name = "benign"', 'name = "ben\\nign"'),
    ("classes.2.name", 'name = "malignant"', 'name = "\\u001b[31mmalignant"'),
    ("model.activation", 'dropout_rate = 0.0', 'dropout_rate = 0.0\nactivation = "relu\\r"'),
    ("dataset.train.images", '"data/train/images"', '"data/train/images\\u2028"'),
    ("metrics.names", '[optimizer]', '[metrics]\nnames = ["dice_coef_multiclass\\t"]\n\n[optimizer]'),
    ("model.name", 'name = "flexunet"', 'name = "flex\\u007funet"'),
])
def test_control_characters_are_refused_in_every_text_key(tiny_project: Path, key: str, old: str, new: str) -> None:
    edit_text(tiny_project, old, new)
    line = error_line(*_train(tiny_project))
    assert re.fullmatch(rf"error: {re.escape(str(tiny_project))}: {re.escape(key)}: contains the control character "
                        r"\\(x0a|x1b|x0d|u2028|x09|x7f) at position \d+ \(remove it; names and paths must be printable text\)",
                        line), line
    assert not (tiny_project.parent / "run").exists()


def _train(project: Path, *args: str) -> tuple[str, int]:
    result = invoke("train", project, *args)
    return result.output, result.exit_code


def test_a_control_character_in_an_unknown_key_stays_on_one_line(tiny_project: Path) -> None:
    edit_text(tiny_project, "seed = 7", 'seed = 7\n"se\\ned" = 1')
    line = error_line(*_train(tiny_project))
    assert line.startswith(f"error: {tiny_project}: project.se\\x0aed: unknown key"), line


def test_written_toml_reads_back_whatever_the_strings_hold() -> None:
    every_control = "".join(chr(code) for code in [*range(0x20), *range(0x7F, 0xA0)])
    strange = f'{every_control} "quoted" \\back\\slash é ☃ \u2028 [/]'
    document = {"project": {"name": strange, strange: [strange, 1.5]}, "classes": [{"name": strange}]}
    assert toml_io.loads(toml_io.dumps(document)) == document


def test_an_unreadable_run_record_is_an_error_not_a_skipped_check(tiny_project: Path) -> None:
    """eval compares the project's [model] with the run's record; a damaged record used to skip that."""
    from segkit.run_folder import BEST_MODEL
    from segkit.run_record import check_trained_with

    project = load_project(tiny_project)
    (project.output_dir / BEST_MODEL).parent.mkdir(parents=True)
    (project.output_dir / BEST_MODEL).write_bytes(b"a trained model")
    record = project.output_dir / RESOLVED_PROJECT
    record.write_text(project.resolved_toml().replace('name = "tiny"', 'name = "ti\x01ny"'), encoding="utf-8")
    with pytest.raises(RunStateError, match=rf"^{re.escape(str(record))}: the run's record of its settings cannot be "
                       r"read \(Illegal character .*\); restore it, or train again with --overwrite$"):
        check_trained_with(project)
    record.write_text("[project]\nname = 'tiny'\n", encoding="utf-8")
    with pytest.raises(RunStateError, match="has no \\[model\\] table"):
        check_trained_with(project)
    record.write_text(project.resolved_toml(), encoding="utf-8")
    assert check_trained_with(project) is project  # the intact record passes


# ------------------------------------------------------------------------------------- large numbers

def _int_options() -> list[tuple[str, Option]]:
    from segkit import sections as core
    from segkit.project import PROJECT_KEYS

    tables = [PROJECT_KEYS, core.MODEL_KEYS, core.MASK_KEYS, core.OPTIMIZER_KEYS, core.REDUCER_KEYS,
              core.TRAIN_KEYS, core.AUGMENT_KEYS, core.INFER_KEYS]
    found = [(option.name, option) for table in tables for option in table]
    for kind, entries in get_registry().entries.items():
        for name, entry in entries.items():
            found += [(f"{kind}:{name}.{option.name}", option) for option in entry.spec.options]
    return [(key, option) for key, option in found if option.kind in ("int", "int_or_pair")]


def test_every_int_option_declares_a_maximum() -> None:
    options = _int_options()
    assert len(options) >= 15
    assert [key for key, option in options if option.maximum is None] == []


@pytest.mark.parametrize(("override", "expected"), [
    ("train.batch_size=" + "1" + "0" * 30, "train.batch_size: must be at most 1024, got 1000000000000000000000000000000"),
    ("train.epochs=" + "9" * 100, "train.epochs: must be at most 100000, got 9999999999999999999999999999999999999999... (100 characters)"),
    ("model.image_width=1000000000", "model.image_width: must be at most 8192, got 1000000000"),
    ("model.image_height=1e9", "model.image_height: expected an integer, got a number (1000000000.0)"),
    ("model.base_kernels=[7, 100001]", "model.base_kernels: must be at most 63, got [7, 100001]"),
    ("infer.batch_size=100000", "infer.batch_size: must be at most 1024, got 100000"),
])
def test_huge_integers_are_refused_before_tensorflow(tiny_project: Path, override: str, expected: str) -> None:
    line = error_line(*_train(tiny_project, "--set", override))
    assert line == f"error: {tiny_project}: {expected}, given with --set", line
    assert not (tiny_project.parent / "run").exists()


def test_a_float_image_size_in_the_file_is_one_line(tiny_project: Path) -> None:
    edit_text(tiny_project, "image_width = 64", "image_width = 1e9")
    line = error_line(*_train(tiny_project))
    assert line == f"error: {tiny_project}: model.image_width: expected an integer, got a number (1000000000.0)"


def test_a_plugin_int_without_a_maximum_is_bounded_by_int32(tmp_path: Path) -> None:
    from segkit.validation import Context, coerce

    ctx = Context(source=tmp_path / "p.toml")
    assert coerce(Option("n", "int", 1), 2**31 - 1, "x.n", ctx) == 2**31 - 1
    with pytest.raises(ProjectError, match=r"x\.n: must be at most 2147483647, got 2147483648$"):
        coerce(Option("n", "int", 1), 2**31, "x.n", ctx)


# --------------------------------------------------------------------- files that are no project file

def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("name", "data", "expected"), [
    ("arrays", b"a = " + b"[" * 10000 + b"]" * 10000, "nests tables or arrays deeper than Python's parser follows"),
    ("inline", b"a = " + b"{b=" * 5000 + b"1" + b"}" * 5000, "nests tables or arrays deeper than Python's parser follows"),
    ("headers", b"[" + b".".join([b"a"] * 10000) + b"]", "nests tables or arrays more than 32 levels deep"),
])
def test_deep_nesting_is_one_line(tmp_path: Path, name: str, data: bytes, expected: str) -> None:
    project = _write(tmp_path / f"{name}.toml", data)
    line = error_line(*_train(project))
    assert line == f"error: {project}: {expected} (a project file needs 4 levels; at most 32 are read)"


def test_a_byte_order_mark_is_named(tiny_project: Path) -> None:
    _write(tiny_project, b"\xef\xbb\xbf" + tiny_project.read_bytes())
    line = error_line(*_train(tiny_project))
    assert line == (f"error: {tiny_project}: starts with a UTF-8 byte-order mark (BOM), which TOML does not allow "
                    "(save it as UTF-8 without BOM)")


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
def test_a_device_is_no_project_file(device: str) -> None:
    line = error_line(*_train(Path(device)))
    assert line == f"error: {device}: is a device, pipe or socket, not a project file (pass the path of a .toml file)"


def test_a_folder_is_no_project_file(tmp_path: Path) -> None:
    line = error_line(*_train(tmp_path))
    assert line == f"error: {tmp_path}: is a folder, not a project file (pass the .toml file inside it)"


def test_a_huge_file_is_not_read(tmp_path: Path) -> None:
    project = tmp_path / "big.toml"
    with project.open("wb") as handle:
        handle.truncate(2**33)  # sparse: 8 GiB that would be read whole
    line = error_line(*_train(project))
    assert line == f"error: {project}: is {2**33} bytes; a project file is a few kilobytes (pass the project's .toml file)"
