"""A run trained with ``--set`` is evaluated, inferred and exported with the settings it trained with:
the project must say the same model-defining keys, and the refusal, before TensorFlow, names the
``--set`` options that reproduce training."""

from __future__ import annotations

from pathlib import Path

import pytest
from segkit_process import run_python, run_segkit
from tiny_data import write_tiny_project

from segkit.run_record import resume_command

REFUSAL_IN_A_FRESH_PROCESS = ("import sys, time\nfrom segkit.cli.main import main\nstart = time.monotonic()\n"
                              "try:\n    main()\nexcept SystemExit as exit:\n"
                              "    print('tensorflow' in sys.modules, exit.code, time.monotonic() - start)\n")


@pytest.fixture(scope="module")
def trained_with_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = write_tiny_project(tmp_path_factory.mktemp("set"), epochs=1)
    result = run_segkit(["train", project, "--quiet", "--set", "model.base_filters=6"])
    assert result.returncode == 0, result.stdout
    return project


@pytest.mark.parametrize("command", [["eval"], ["infer"], ["export", "--format", "keras"]])
def test_without_the_set_of_training_the_refusal_names_it_before_tensorflow(trained_with_set: Path,
                                                                           command: list[str]) -> None:
    run = trained_with_set.parent / "run"
    before = sorted(p for p in run.rglob("*"))
    result = run_python(REFUSAL_IN_A_FRESH_PROCESS, [command[0], trained_with_set, *command[1:]])
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert errors == [(f"error: {run}/models/best_model.keras: was trained with model.base_filters = 6 (project: 4); "
                       "put the project back or train again with --overwrite (or pass --set model.base_filters=6 "
                       "as in training)")], result.stdout
    imported, code, seconds = result.stdout.splitlines()[-1].split()
    assert (imported, code) == ("False", "2") and float(seconds) < 1.0, result.stdout
    assert sorted(p for p in run.rglob("*")) == before


def test_with_the_set_of_training_eval_runs(trained_with_set: Path) -> None:
    result = run_segkit(["eval", trained_with_set, "--set", "model.base_filters=6"])
    assert result.returncode == 0, result.stdout
    rows = (trained_with_set.parent / "run" / "evaluation.csv").read_text().splitlines()
    assert rows[0] == "metric,value" and rows[1].startswith("categorical_crossentropy,")


def test_the_resume_hint_repeats_every_set() -> None:
    assert resume_command(Path("my project.toml"), ["model.base_filters=6", "classes.2.name='tumour'"]) == (
        "segkit train 'my project.toml' --set model.base_filters=6 --set 'classes.2.name='\"'\"'tumour'\"'\"'' "
        "--resume")
