"""``--set model.name=OTHER`` on a project whose ``[model]`` holds another model's keys.

The file's FlexUNet keys (``base_filters``, ``dropout_rate``, ...) used to make every other model
refuse the project as "unknown key": no model could be tried from the command line. Keys the new
model does not declare are now left out with a note naming them; keys it declares are kept.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_data import edit_text
from typer.testing import CliRunner

from segkit.cli.main import app
from segkit.errors import ProjectError
from segkit.options import Option
from segkit.plugins import PluginInfo, Registry, get_registry
from segkit.project import load_project
from segkit.specs import ModelSpec

#: a model that shares one key with FlexUNet (num_layers) and has one of its own
TINY_OPTIONS = (Option("width", "int", 4, "filters", minimum=1, maximum=64),
                Option("num_layers", "int", 2, "levels", minimum=1, maximum=5))
NOTE = ("model.name = 'tinynet' given with --set: left out the [model] keys 'tinynet' does not take: "
        "base_filters, base_kernels, dropout_rate")


def with_tiny_model() -> Registry:
    """The session's registry plus a model spec that no plugin provides (the CLI reads the same registry)."""
    registry = get_registry()
    registry.add("model", ModelSpec("tinynet", "a test model", lambda request: None, options=TINY_OPTIONS),
                 PluginInfo("tinynet", "tests", "tests", "0"))
    return registry


def test_switching_models_drops_the_keys_the_new_model_does_not_take(tiny_project: Path) -> None:
    registry = with_tiny_model()
    project = load_project(tiny_project, ["model.name=tinynet"], registry)
    assert project.model.name == "tinynet"
    assert dict(project.model.options) == {"width": 4, "num_layers": 3}  # num_layers: the file's value, kept
    assert (project.model.image_width, project.model.image_height) == (64, 64)
    assert project.notes == (NOTE,)
    assert project.resolved["model"] == {"name": "tinynet", "image_width": 64, "image_height": 64,
                                         "image_channels": 3, "microns_per_pixel": None, "width": 4,
                                         "num_layers": 3}


def test_the_note_is_printed(tiny_project: Path) -> None:
    with_tiny_model()
    result = CliRunner().invoke(app, ["train", str(tiny_project), "--set", "model.name=tinynet", "--resume"])
    assert f"note: {NOTE}" in result.output.splitlines(), result.output
    assert result.exit_code == 2, result.output  # nothing to resume: the switch itself validated


def test_the_same_model_given_with_set_keeps_every_key(tiny_project: Path) -> None:
    project = load_project(tiny_project, ["model.name=flexunet"], with_tiny_model())
    assert project.notes == ()
    assert project.model.options["base_filters"] == 4


def test_a_key_given_with_set_is_never_dropped(tiny_project: Path) -> None:
    with pytest.raises(ProjectError, match=r"model\.base_filters: unknown key, given with --set"):
        load_project(tiny_project, ["model.name=tinynet", "model.base_filters=8"], with_tiny_model())


def test_a_model_named_in_the_file_still_refuses_foreign_keys(tiny_project: Path) -> None:
    edit_text(tiny_project, 'name = "flexunet"', 'name = "tinynet"')
    with pytest.raises(ProjectError, match=r"model\.base_filters: unknown key"):
        load_project(tiny_project, [], with_tiny_model())
