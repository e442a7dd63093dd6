"""Each project key declared once: section records derived from their settings, defaults checked.

Keys used to live in an Option tuple, again in a section dataclass with defaults of its own (built
from ten positional arguments for [train]) and, for [augment], a third time in the pipeline with a
different ``stain_jitter``; a default skipped validation, so an ``int_or_pair`` default ``7`` stayed
``7`` where a written ``7`` became ``[7, 7]``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from segkit import sections
from segkit.data.pipeline import Augment
from segkit.errors import ProjectError
from segkit.options import Option
from segkit.plugins import PluginInfo, get_registry
from segkit.project import Project, load_project
from segkit.specs import ModelSpec

RECORDS = (Project, sections.PluginSection, sections.ModelSection, sections.OptimizerSection,
           sections.ReducerSection, sections.TrainSection, sections.AugmentSection, sections.InferSection,
           sections.SlidesSection)


def test_a_plugins_default_is_normalised_like_a_written_value(tiny_project: Path) -> None:
    registry = get_registry()
    options = (Option("kernel", "int_or_pair", 7, "kernel", minimum=1, maximum=9),
               Option("names", "str_list", ["a"], "names"))
    registry.add("model", ModelSpec("pairnet", "a test model", lambda request: None, options=options),
                 PluginInfo("pairnet", "tests", "tests", "0"))
    project = load_project(tiny_project, ["model.name=pairnet"], registry)
    assert dict(project.model.options) == {"kernel": [7, 7], "names": ["a"]}  # as `kernel = 7` would give
    assert project.model.options["names"] is not options[1].default  # a copy: the declaration stays as it is
    assert "kernel = [7, 7]\n" in project.resolved_toml()
    written = load_project(tiny_project, ["model.name=pairnet", "model.kernel=7"], registry)
    assert written.model.options == project.model.options


def test_a_default_outside_its_bounds_is_reported_by_key(tiny_project: Path) -> None:
    registry = get_registry()
    registry.add("model", ModelSpec("badnet", "a test model", lambda request: None,
                                    options=(Option("depth", "int", 0, "levels", minimum=1, maximum=4),)),
                 PluginInfo("badnet", "tests", "tests", "0"))
    with pytest.raises(ProjectError, match="model.depth: must be at least 1, got 0"):
        load_project(tiny_project, ["model.name=badnet"], registry)


def test_every_validated_key_reaches_its_section_record(tiny_project: Path) -> None:
    project = load_project(tiny_project, ["train.reducer.factor=0.25", "augment.zoom=0.1"])
    resolved = project.resolved
    for section in ("optimizer", "train", "augment", "infer", "slides"):
        assert dataclasses.asdict(getattr(project, section)) == resolved[section], section
    assert project.train.reducer == sections.ReducerSection(factor=0.25, patience=resolved["train"]["reducer"]["patience"])
    core = {key: resolved["model"][key] for key in ("name", "image_width", "image_height", "image_channels",
                                                      "microns_per_pixel")}
    model = dataclasses.asdict(project.model)
    assert model.pop("options") == {k: v for k, v in resolved["model"].items() if k not in core}
    assert model == core
    assert (project.name, project.output_dir, project.seed) == tuple(resolved["project"].values())


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.__name__)
def test_records_take_keywords_and_no_defaults_of_their_own(record: type) -> None:
    declared = [f for f in dataclasses.fields(record) if "segkit.option" in f.metadata]
    assert declared, "the record declares its keys"
    assert all(f.default is dataclasses.MISSING for f in declared)  # the option's default is the only one
    with pytest.raises(TypeError):
        record(*range(len(dataclasses.fields(record))))  # positional construction is refused


def test_the_pipelines_transforms_have_no_defaults_of_their_own() -> None:
    assert [f.default for f in dataclasses.fields(Augment)] == [dataclasses.MISSING] * len(dataclasses.fields(Augment))
    declared = {o.name: o for o in sections.AUGMENT_KEYS}
    assert {f.name for f in dataclasses.fields(Augment)} <= set(declared)  # taken from [augment] by name
