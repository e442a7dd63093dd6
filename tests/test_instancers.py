"""Instancers: the hook, the ``[instances]`` section, classes from the softmax, and the two built-in methods."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_results import invoke, single_error_line
from segkit_process import block_imports, imported_by_listing_and_validation, output_of, run_python
from test_plugins import fake_entry_point, install_module
from tiny_data import tiny_project, write_tiny_project

from segkit import toml_io
from segkit.classes import ClassInfo, ClassTable
from segkit.engine.components import build_instancer
from segkit.errors import ProjectError
from segkit.objects.classify import instances_from_labels
from segkit.plugins import build_registry, get_registry
from segkit.project import load_project
from segkit.specs import Instances, InstancerRequest, InstancerSpec

CLASSES = ClassTable((ClassInfo("background", (0, 0, 0)), ClassInfo("benign", (0, 255, 0)),
                      ClassInfo("malignant", (255, 0, 0))))


def instancer(name: str, **options: Any) -> Any:
    """A built-in instancer with its declared defaults, ``options`` changed."""
    spec = get_registry().get("instancer", name).spec
    defaults = {option.name: option.default for option in spec.options}
    return spec.build(InstancerRequest({**defaults, **options}, CLASSES))


def softmax_of(classes: np.ndarray, confidence: float = 0.9) -> np.ndarray:
    """A (H, W, 3) softmax giving each pixel's class ``confidence`` and the other two the rest, evenly."""
    probabilities = np.full((*classes.shape, 3), (1 - confidence) / 2, dtype=np.float32)
    np.put_along_axis(probabilities, classes[..., None], np.float32(confidence), axis=-1)
    return probabilities


def two_touching_discs() -> tuple[np.ndarray, np.ndarray]:
    """Two discs of radius 10 whose centres are 16 px apart (they overlap in a neck), one per boolean array."""
    yy, xx = np.mgrid[:48, :64]
    return (yy - 24) ** 2 + (xx - 22) ** 2 <= 100, (yy - 24) ** 2 + (xx - 38) ** 2 <= 100


def instances_of(built: Any) -> Instances:
    """What an instancer finds in the two touching discs."""
    left, right = two_touching_discs()
    return built(softmax_of(np.where(left | right, 2, 0)), np.zeros((48, 64, 3), np.uint8))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_watershed_splits_two_touching_discs_that_connected_components_merge() -> None:
    left, right = two_touching_discs()
    probabilities = softmax_of(np.where(left | right, 2, 0))
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    merged = instancer("connected-components")(probabilities, image)
    split = instancer("watershed")(probabilities, image)
    assert merged.count == 1 and split.count == 2
    assert merged.labels.dtype == split.labels.dtype == np.int32
    for disc in (left, right):
        best = max(iou(disc, split.labels == i) for i in (1, 2))
        assert best > 0.8, best
    assert list(split.classes) == [2, 2]
    np.testing.assert_allclose(split.probabilities, [0.9, 0.9], rtol=1e-6)


def test_watershed_keeps_a_nucleus_whose_maximum_a_taller_neighbour_masks() -> None:
    """With min_distance 12 the small disc's maximum is no peak (the big one's is 16 px away); it stays an object."""
    yy, xx = np.mgrid[:40, :48]
    big, small = (yy - 20) ** 2 + (xx - 20) ** 2 <= 64, (yy - 20) ** 2 + (xx - 36) ** 2 <= 9
    found = instancer("watershed", min_distance=12)(softmax_of(np.where(big | small, 1, 0)), None)
    assert found.count == 2
    assert [len(np.unique(found.labels[disc])) for disc in (big, small)] == [1, 1]
    assert found.labels[small][0] not in (0, found.labels[big][0])
    assert instancer("watershed", min_distance=12, min_area=30)(softmax_of(np.where(big | small, 1, 0)), None).count == 1


def test_connected_components_keep_classes_apart_and_drop_small_objects() -> None:
    classes = np.zeros((20, 20), dtype=np.int64)
    classes[2:8, 2:8] = 1
    classes[2:8, 8:14] = 2  # touches the benign square: a class boundary still separates them
    classes[15, 15] = 2  # one pixel: noise below min_area
    found = instancer("connected-components", min_area=4)(softmax_of(classes), np.zeros((20, 20, 3), np.uint8))
    assert found.count == 2 and list(found.classes) == [1, 2]
    assert [int((found.labels == i).sum()) for i in (1, 2)] == [36, 36]
    assert found.labels[15, 15] == 0
    assert instancer("connected-components", min_area=0)(softmax_of(classes), None).count == 3


def test_an_object_takes_the_class_with_most_probability_and_its_mean() -> None:
    labels = np.zeros((4, 10), dtype=np.int64)
    labels[:, :5] = 9  # ids need not be consecutive: 9 -> 2, 5 -> 1
    labels[:, 5:] = 5
    probabilities = np.zeros((4, 10, 3), dtype=np.float32)
    probabilities[..., 0] = 1.0
    probabilities[:, :3] = [0.1, 0.2, 0.7]  # object 9: 12 pixels mostly malignant ...
    probabilities[:, 3:5] = [0.1, 0.6, 0.3]  # ... and 8 pixels whose argmax is benign
    probabilities[:, 5:] = [0.2, 0.5, 0.3]  # object 5: benign throughout
    found = instances_from_labels(labels, probabilities)
    assert set(np.unique(found.labels)) == {1, 2} and (found.labels[:, :5] == 2).all()
    assert list(found.classes) == [1, 2]
    # malignant mass 12 * 0.7 + 8 * 0.3 = 10.8 beats benign 12 * 0.2 + 8 * 0.6 = 7.2; mean 10.8 / 20
    np.testing.assert_allclose(found.probabilities, [0.5, 0.54], rtol=1e-6)
    assert found.probabilities.dtype == np.float32


def test_no_objects_and_objects_everywhere() -> None:
    probabilities = softmax_of(np.zeros((6, 6), dtype=np.int64))
    empty = instances_from_labels(np.zeros((6, 6), dtype=np.int32), probabilities)
    assert (empty.count, empty.classes.dtype, empty.probabilities.dtype) == (0, np.int32, np.float32)
    assert not empty.labels.any()
    full = instances_from_labels(np.full((6, 6), 3, dtype=np.uint16), probabilities)
    assert full.count == 1 and (full.labels == 1).all()
    assert instancer("watershed")(probabilities, None).count == 0


@pytest.mark.parametrize(("labels", "probabilities", "message"), [
    (np.zeros((4, 4), np.float32), np.zeros((4, 4, 3)), "must be a 2-D integer array, got float32"),
    (np.zeros((4, 5), np.int32), np.zeros((4, 4, 3)), "probabilities (4, 4, 3) do not fit labels (4, 5)"),
    (np.zeros((4, 4), np.int32), np.zeros((4, 4, 1)), "K >= 2 classes"),
    (np.full((4, 4), -1, np.int32), np.zeros((4, 4, 3)), "must not be negative, got -1"),
])
def test_labels_and_probabilities_that_do_not_fit(labels: np.ndarray, probabilities: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        instances_from_labels(labels, probabilities)


def test_a_project_without_instances_is_unchanged(tiny_project: Path) -> None:
    project = load_project(tiny_project)
    assert project.instances is None and "instances" not in project.resolved
    assert build_instancer(project, get_registry()) is None


def test_instances_section_with_its_instancer_keys(tmp_path: Path) -> None:
    path = write_tiny_project(tmp_path, instances={"name": "watershed", "min_distance": 5, "microns_per_pixel": 0.25})
    project = load_project(path)
    assert project.instances is not None
    assert (project.instances.name, project.instances.microns_per_pixel, project.instances.compress_geojson) == (
        "watershed", 0.25, False)
    assert project.instances.options == {"threshold": 0.5, "smoothing": 1.0, "min_distance": 5, "min_area": 4}
    assert toml_io.loads(project.resolved_toml())["instances"]["min_distance"] == 5
    assert instances_of(build_instancer(project, get_registry())).count == 2


@pytest.mark.parametrize(("instances", "line"), [
    ({"name": "watershed", "min_distanse": 3},
     "instances.min_distanse: unknown key (did you mean 'min_distance'?)"),
    ({"name": "watershed", "threshold": 1.5}, "instances.threshold: must be at most 0.99, got 1.5"),
    ({"name": "connected-components", "microns_per_pixel": 0}, "instances.microns_per_pixel: must be at least 0.001, got 0.0"),
    ({"name": "watershed", "compress_geojson": "yes"}, "instances.compress_geojson: expected true or false, got a string ('yes')"),
    ({"name": "watershedd"}, "instances.name: unknown instancer 'watershedd' (available: connected-components, "
                             "watershed); did you mean 'watershed'?"),
    ({"min_area": 3}, "instances.name: is required but missing (an instancer plugin name, see `segkit plugins`)"),
])
def test_bad_instances_keys_are_one_line(tmp_path: Path, instances: dict[str, Any], line: str) -> None:
    project = write_tiny_project(tmp_path, instances=instances)
    assert single_error_line(invoke("train", project)) == f"error: {project.resolve()}: {line}"
    assert not (tmp_path / "run").exists()


def test_instances_need_a_foreground_class(tmp_path: Path) -> None:
    project = tmp_path / "p.toml"
    document = tiny_project(classes=[{"name": "background", "color": [0, 0, 0]}], instances={"name": "watershed"})
    project.write_text(toml_io.dumps(document), encoding="utf-8")
    line = single_error_line(invoke("train", project))
    assert line == f"error: {project.resolve()}: classes: needs at least 2 classes (background first), got 1"


def test_a_builder_value_error_is_one_line_on_instances(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(request: InstancerRequest) -> Any:
        raise ValueError("min_size must not exceed max_size")

    install_module(monkeypatch, "fake_instancers",
                   segkit_instancers=lambda: [InstancerSpec("picky", "refuses its keys", refuse)])
    registry = build_registry([*metadata.entry_points(group="segkit"), fake_entry_point("picky", "fake_instancers")])
    path = write_tiny_project(tmp_path, instances={"name": "picky"})
    with pytest.raises(ProjectError) as info:
        build_instancer(load_project(path, registry=registry), registry)
    assert str(info.value) == f"{path.resolve()}: instances: min_size must not exceed max_size"


def test_segkit_plugins_lists_both_instancers() -> None:
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    entries = {e["name"]: e for e in json.loads(result.output)["entries"] if e["kind"] == "instancer"}
    assert sorted(entries) == ["connected-components", "watershed"]
    assert entries["watershed"]["options"] == ["threshold", "smoothing", "min_distance", "min_area"]
    assert {e["plugin"] for e in entries.values()} == {"objects"}
    table = invoke("plugins").output
    assert any(re.match(r"│ watershed +│ instancer +│", line) for line in table.splitlines()), table


def test_a_missing_scikit_image_is_one_line() -> None:
    result = run_python(block_imports(["skimage"]) + (
        "from segkit.classes import ClassInfo, ClassTable\n"
        "from segkit.errors import PluginError\n"
        "from segkit.plugins import get_registry\n"
        "from segkit.specs import InstancerRequest\n"
        "spec = get_registry().get('instancer', 'watershed').spec\n"
        "options = {o.name: o.default for o in spec.options}\n"
        "try:\n"
        "    spec.build(InstancerRequest(options, ClassTable((ClassInfo('a', (0, 0, 0)), ClassInfo('b', (1, 1, 1))))))\n"
        "except PluginError as exc:\n"
        "    print(exc)\n"))
    assert result.stdout.strip() == ("instancer 'watershed' needs scikit-image, which is not installed "
                                     '(pip install "segkit[objects]")'), output_of(result)


def test_listing_and_validation_import_no_scikit_image(tmp_path: Path) -> None:
    path = write_tiny_project(tmp_path, instances={"name": "watershed"})
    assert imported_by_listing_and_validation(path, ("skimage", "scipy", "tensorflow", "shapely")) == []


@pytest.mark.parametrize(("returned", "problem"), [
    ("not instances", "a str, not Instances"),
    (Instances(np.ones((4, 4)), np.array([1]), np.array([0.9])), "labels of dtype float64, not integers"),
    (Instances(np.full((4, 4), 2, np.int32), np.array([1]), np.array([0.9])),
     "1 classes for labels 2..2 (ids must be 0 and 1..N)"),
    (Instances(np.ones((4, 4), np.int32), np.array([3]), np.array([0.9])),
     "classes that are not foreground class indices 1..2"),
    (Instances(np.ones((4, 4), np.int32), np.array([0]), np.array([0.9])),
     "classes that are not foreground class indices 1..2"),
    (Instances(np.ones((4, 4), np.int32), np.array([1]), np.array([0.9, 0.8])), "2 probabilities for 1 objects"),
])
def test_what_an_instancer_returns_is_held_to_the_contract(returned: object, problem: str) -> None:
    from segkit.errors import PluginError
    from segkit.objects.classify import checked_instances

    with pytest.raises(PluginError) as caught:
        checked_instances(returned, (4, 4, 3), "sloppy", "a.png")
    assert str(caught.value) == (f"instancer 'sloppy': returned {problem} for a.png "
                                 "(a bug in the instancer plugin; report it to its authors)")


def test_instances_that_keep_the_contract_come_back_as_int32_and_float32() -> None:
    from segkit.objects.classify import checked_instances

    labels = np.array([[0, 1], [2, 2]], np.int64)
    kept = checked_instances(Instances(labels, [1, 2], [0.5, 0.75]), (2, 2, 3), "fine", "a.png")
    assert kept.labels.dtype == np.int32 and kept.labels.tolist() == labels.tolist()
    assert kept.classes.tolist() == [1, 2] and kept.probabilities.dtype == np.float32
