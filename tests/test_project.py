"""Project validation: every message names the file and key, and nothing imports TensorFlow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from segkit_process import output_of, run_python
from tiny_data import edit_text

from segkit import toml_io
from segkit.errors import ProjectError
from segkit.overrides import parse_value
from segkit.project import load_project


def _error(project: Path, *overrides: str) -> str:
    with pytest.raises(ProjectError) as info:
        load_project(project, overrides)
    return str(info.value)


def test_defaults_filled_and_paths_resolved(tiny_project: Path) -> None:
    project = load_project(tiny_project)
    root = tiny_project.parent
    assert project.output_dir == root / "run"
    assert project.dataset.options["train"]["images"] == root / "data" / "train" / "images"
    assert project.model.options["base_kernels"] == [5, 5]
    assert project.model.options["dilation"] == [1, 1]
    assert project.model.image_channels == 3
    assert project.classes.num_classes == 3
    assert project.classes.names == ("background", "benign", "malignant")
    assert project.loss.name == "categorical_crossentropy"
    assert project.metrics == ("dice_coef_multiclass",)
    assert (project.train.reducer.factor, project.train.reducer.patience) == (0.5, 1)
    assert project.infer.output == root / "run" / "infer"
    assert project.callbacks[0].options == {"images": root / "data" / "test" / "images", "count": 2, "masks": None}


def test_resolved_toml_round_trips(tiny_project: Path, tmp_path: Path) -> None:
    project = load_project(tiny_project)
    again = tmp_path / "again.toml"
    again.write_text(project.resolved_toml())
    reloaded = load_project(again)
    assert reloaded.resolved == project.resolved
    assert toml_io.loads(project.resolved_toml())["optimizer"] == {
        "name": "adam", "learning_rate": 0.01, "clipvalue": 0.5, "weight_decay": 0.004}


def test_overrides_parse_toml_values_and_set_paths_from_cwd(tiny_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tiny_project.parent / "data")
    project = load_project(tiny_project, ["train.epochs=5", "model.base_kernels=[7, 3]", "project.name=other",
                                          "callbacks.0.images=valid/images", "optimizer.learning_rate=1e-4"])
    assert project.train.epochs == 5
    assert project.model.options["base_kernels"] == [7, 3]
    assert project.name == "other"
    assert project.optimizer.learning_rate == 1e-4
    assert project.callbacks[0].options["images"] == tiny_project.parent / "data" / "valid" / "images"
    assert parse_value("[1, 2]") == [1, 2] and parse_value("true") is True and parse_value("abc") == "abc"


@pytest.mark.parametrize(
    ("old", "new", "pattern"),
    [
        ("epochs = 2", "epochs = 2\nepoch = 3", r"train\.epoch: unknown key \(did you mean 'epochs'\?\)"),
        ("base_filters = 4", "base_filter = 4", r"model\.base_filter: unknown key \(did you mean 'base_filters'\?\)"),
        ("epochs = 2", 'epochs = "two"', r"train\.epochs: expected an integer, got a string \('two'\)"),
        ("image_width = 64\n", "", r"model\.image_width: is required but missing"),
        ('name = "flexunet"', 'name = "flexunett"', r"model\.name: unknown model 'flexunett' \(available: flexunet\); did you mean 'flexunet'\?"),
        ('name = "adam"', 'name = "sgd"', r"optimizer\.name: must be one of adam, adamw; got 'sgd'"),
        ('[train]', '[trian]', r"trian: unknown section \(did you mean 'train'\?\)"),
        ('color = [255, 0, 0]', 'color = [0, 255, 0]', r"classes\.2\.color: same color as classes\.1"),
        ('color = [255, 0, 0]', 'color = [300, 0, 0]', r"classes\.2\.color: colour channels must be 0\.\.255"),
        ('[dataset.test]\nimages = "data/test/images"', '[dataset.test]\nimages = "data/nowhere"', r"dataset\.test\.images: folder .*nowhere does not exist"),
        ("count = 2", "count = 0", r"callbacks\.0\.count: must be at least 1, got 0"),
        ("seed = 7", "seed = -1", r"project\.seed: must be at least 0, got -1"),
        ("batch_size = 4", "batch_size = 4.5", r"train\.batch_size: expected an integer, got a number"),
    ],
)
def test_bad_values_name_file_and_key(tiny_project: Path, old: str, new: str, pattern: str) -> None:
    message = _error(edit_text(tiny_project, old, new))
    assert message.startswith(str(tiny_project.resolve()))
    assert re.search(pattern, message), message


def test_malformed_toml_names_the_line(tiny_project: Path) -> None:
    edit_text(tiny_project, "seed = 7", "seed = = 7")
    assert re.search(r"invalid TOML: .*line 5", _error(tiny_project))


def test_unknown_metric_and_callback_names(tiny_project: Path) -> None:
    assert "metrics.names.0: unknown metric 'dice'" in _error(tiny_project, 'metrics.names=["dice"]')
    message = _error(tiny_project, 'callbacks.0.name="epoch-change"')
    assert "callbacks.0.name: unknown callback 'epoch-change'" in message
    assert "did you mean 'epoch-change-inferencer'?" in message


def test_bad_override_syntax(tiny_project: Path) -> None:
    assert "expected KEY.PATH=VALUE" in _error(tiny_project, "train.epochs")
    assert "'5' is not an index of this array" in _error(tiny_project, "classes.5.name=x")
    assert "train.epochs: must be at least 1, got 0" in _error(tiny_project, "train.epochs=0")


def test_a_path_that_is_a_file(tiny_project: Path) -> None:
    (tiny_project.parent / "afile").write_text("x")
    edit_text(tiny_project, '[dataset.test]\nimages = "data/test/images"', '[dataset.test]\nimages = "afile"')
    assert "dataset.test.images: " in _error(tiny_project)
    assert "afile is a file, not a folder" in _error(tiny_project)


def test_validation_imports_no_tensorflow(tiny_project: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from segkit.project import load_project; "
        f"load_project(Path({str(tiny_project)!r})); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'"
    )
    result = run_python(code)
    assert result.returncode == 0, output_of(result)
