"""Values a project file (or ``--set``) may hold that no code downstream can take: refused in one line.

Non-finite numbers, clashing or empty class names and masks that match no class colour used to
train and exit 0; each is now an ``error:`` line, exit 2, with nothing written to the run folder.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_results import error_line, invoke
from PIL import Image
from tiny_data import edit_text

from segkit.errors import DataError, ProjectError
from segkit.options import Option
from segkit.plugins import get_registry
from segkit.project import load_project
from segkit.validation import Context, coerce


def _run(*args: object) -> tuple[str, int]:
    result = invoke(*args)
    return result.output, result.exit_code


def load_error(project: Path, *overrides: str) -> str:
    with pytest.raises(ProjectError) as info:
        load_project(project, overrides)
    return str(info.value)


def _walk(options: tuple[Option, ...], prefix: str) -> Iterator[tuple[str, Option]]:
    for option in options:
        key = f"{prefix}.{option.name}"
        yield key, option
        yield from _walk(option.fields, key)


def every_option() -> list[tuple[str, Option]]:
    """Every declared key: the core's sections and every registered plugin's own keys."""
    from segkit import sections as core
    from segkit.project import PROJECT_KEYS

    tables = {"project": PROJECT_KEYS, "model": core.MODEL_KEYS, "classes.0": core.CLASS_KEYS,
              "mask": core.MASK_KEYS, "optimizer": core.OPTIMIZER_KEYS, "train": core.TRAIN_KEYS,
              "augment": core.AUGMENT_KEYS, "infer": core.INFER_KEYS, "metrics": core.METRICS_KEYS}
    found = [pair for prefix, options in tables.items() for pair in _walk(options, prefix)]
    registry = get_registry()
    for kind, entries in registry.entries.items():
        for name, entry in entries.items():
            found += _walk(entry.spec.options, f"{kind}:{name}")
    return found


# ------------------------------------------------------------------------------------ non-finite numbers

@pytest.mark.parametrize("literal", ["nan", "inf", "-inf", "+nan"])
def test_every_float_option_refuses_non_finite_numbers(literal: str, tmp_path: Path) -> None:
    import tomllib

    value = tomllib.loads(f"v = {literal}")["v"]
    ctx = Context(source=tmp_path / "p.toml")
    floats = [(key, option) for key, option in every_option() if option.kind == "float"]
    assert len(floats) >= 15  # the core's and the built-in plugins' float keys
    for key, option in floats:
        with pytest.raises(ProjectError, match=rf"{re.escape(key)}: expected a finite number, got {literal.lstrip('+')}"):
            coerce(option, value, key, ctx)


def test_nan_learning_rate_in_the_file_is_one_line(tiny_project: Path) -> None:
    edit_text(tiny_project, "learning_rate = 0.01", "learning_rate = nan")
    line = error_line(*_run("train", tiny_project))
    assert line == (f"error: {tiny_project}: optimizer.learning_rate: expected a finite number, got nan "
                    "(write an ordinary number, e.g. 0.001)")
    assert not (tiny_project.parent / "run").exists()


@pytest.mark.parametrize("overrides", [
    ["mask.tolerance=nan"], ["augment.zoom=inf"], ["optimizer.clipvalue=-inf"],
    ["loss.name=dice_crossentropy", "loss.dice_weight=nan"], ["optimizer.learning_rate=1" + "0" * 400],
])
def test_non_finite_numbers_given_with_set_are_refused(tiny_project: Path, overrides: list[str]) -> None:
    line = error_line(*_run("train", tiny_project, *(a for o in overrides for a in ("--set", o))))
    key = overrides[-1].partition("=")[0]
    assert f"tiny.toml: {key}: expected a finite number, got " in line and line.endswith(
        ", given with --set (write an ordinary number, e.g. 0.001)"), line
    assert not (tiny_project.parent / "run").exists()


# ----------------------------------------------------------------------------------------- class names

@pytest.mark.parametrize(("old", "new", "expected"), [
    ('name = "malignant"', 'name = "benign"', "classes.2.name: same name as classes.1 ('benign')"),
    ('name = "malignant"', 'name = " Benign "', "classes.2.name: same name as classes.1 ('benign')"),
    ('name = "benign"', 'name = ""', "classes.1.name: is empty ('')"),
    ('name = "benign"', 'name = " \\u3000 "', "classes.1.name: is empty (' \\u3000 ')"),
])
def test_class_names_are_unique_and_not_empty(tiny_project: Path, old: str, new: str, expected: str) -> None:
    edit_text(tiny_project, old, new)
    line = error_line(*_run("train", tiny_project))
    assert line.startswith(f"error: {tiny_project}: {expected}"), line
    assert not (tiny_project.parent / "run").exists()


def test_duplicate_class_name_given_with_set(tiny_project: Path) -> None:
    message = load_error(tiny_project, "classes.0.name=malignant")
    assert message == (f"{tiny_project}: classes.2.name: same name as classes.0 ('malignant') "
                       "(each class needs its own name and colour)")


# -------------------------------------------------------------------- masks that match no class colour

def _repaint_masks(folder: Path, main: tuple[int, int, int], stripe: tuple[int, int, int] | None = None) -> None:
    """Every mask in ``folder`` painted ``main``, its right quarter ``stripe``."""
    for path in sorted(folder.iterdir()):
        mask = np.zeros((64, 64, 3), np.uint8) + np.array(main, np.uint8)
        mask[:, 48:] = stripe if stripe is not None else main
        Image.fromarray(mask).save(path)


def test_a_split_whose_masks_match_no_class_colour_is_refused(tiny_project: Path) -> None:
    masks = tiny_project.parent / "data" / "valid" / "masks"
    _repaint_masks(masks, (128, 128, 128), (0, 0, 255))
    line = error_line(*_run("train", tiny_project))
    assert line == (f"error: dataset.valid.masks: {masks}: no pixel of the valid masks lies within 60 of a "
                    "class colour; they hold [128, 128, 128] (75%), [0, 0, 255] (25%) (set the [[classes]] "
                    "colours to the masks' colours, point the split at its masks folder, or raise [mask] tolerance)")
    assert not (tiny_project.parent / "run").exists()


def test_masks_matching_only_the_ignore_colour_are_accepted(tiny_project: Path) -> None:
    from segkit.engine.components import open_dataset

    _repaint_masks(tiny_project.parent / "data" / "train" / "masks", (200, 200, 200))
    edit_text(tiny_project, "[optimizer]", "[mask]\nignore_color = [210, 210, 210]\n\n[optimizer]")
    assert len(open_dataset(load_project(tiny_project), get_registry()).check("train")) == 8
    far_ignore = load_project(tiny_project, ["mask.ignore_color=[90, 90, 90]"])
    with pytest.raises(DataError, match=r"within 60 of a class colour or the ignore colour; they hold \[200, 200, 200\] \(100%\)"):
        open_dataset(far_ignore, get_registry()).check("train")


def test_more_classes_than_a_mask_of_indices_holds_is_refused(tiny_project: Path) -> None:
    """300 classes used to reach mask decoding (uint8 indices) inside tf.data, where the run hung."""
    text = tiny_project.read_text(encoding="utf-8")
    extra = "".join(f'\n[[classes]]\nname = "c{i}"\ncolor = [{i % 256}, {i // 256}, 7]\n' for i in range(297))
    tiny_project.write_text(text + extra, encoding="utf-8")
    assert load_error(tiny_project) == (f"{tiny_project}: classes: has 300 classes; at most 255 fit a mask of "
                                        "class indices (255 marks ignored pixels) (merge classes)")
    fitting = "".join(f'\n[[classes]]\nname = "c{i}"\ncolor = [{i}, 1, 7]\n' for i in range(252))
    tiny_project.write_text(text + fitting, encoding="utf-8")
    assert load_project(tiny_project).classes.num_classes == 255


def test_class_names_that_read_alike_get_distinct_metric_names() -> None:
    """The per-class metric names are made of letters and digits; "tumour a" and "tumour-a" used to
    give two metrics called dice_tumour_a."""
    from segkit_training.metric_sets import per_class_scores

    from segkit.classes import ClassInfo, ClassTable
    from segkit.specs import MetricRequest

    table = ClassTable((ClassInfo("background", (0, 0, 0)), ClassInfo("tumour a", (0, 255, 0)),
                        ClassInfo("tumour-a", (255, 0, 0)), ClassInfo("Tumour_A", (0, 0, 255))))
    names = [metric.name for metric in per_class_scores(MetricRequest(table))]
    assert names == ["dice_background", "dice_tumour_a", "dice_tumour_a_2", "dice_tumour_a_3",
                     "iou_background", "iou_tumour_a", "iou_tumour_a_2", "iou_tumour_a_3", "mean_foreground_dice"]
