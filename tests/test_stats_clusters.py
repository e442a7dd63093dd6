"""``segkit stats`` groups near-duplicates into clusters and refuses what it cannot use, in one line.

Many copies of one tile used to be listed pair by pair (300 copies: 44,850 rows; 1,000: no end);
``--threshold nan`` was accepted; ``--json`` onto a folder failed after the scan and left its
temporary file behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_results import invoke, single_error_line
from PIL import Image
from tiny_data import blob_pair, write_split

from segkit.stats.near_duplicates import ImageFingerprint, find_near_duplicates
from segkit.toml_io import write_atomic


def write_copies(split: Path, count: int, seed: int = 0) -> None:
    """``count`` identical image/mask pairs of one tile."""
    image, mask = blob_pair(seed)
    for folder in ("images", "masks"):
        (split / folder).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(image).save(split / "images" / f"copy_{index:03d}.png")
        Image.fromarray(mask).save(split / "masks" / f"copy_{index:03d}.png")


def stats_json(target: Path, report: Path, *options: object) -> dict:
    result = invoke("stats", target, "--json", report, *options)
    assert result.exit_code == 0, result.output
    return json.loads(report.read_text())


def test_three_hundred_copies_are_one_cluster(tmp_path: Path) -> None:
    write_copies(tmp_path / "data", 300)
    result = invoke("stats", tmp_path / "data", "--json", tmp_path / "stats.json")
    assert result.exit_code == 0, result.output
    assert "(1 clusters of 300 images, 0 across splits)" in " ".join(result.output.split())
    duplicates = json.loads((tmp_path / "stats.json").read_text())["duplicates"]
    (cluster,) = duplicates["clusters"]
    assert (cluster["size"], cluster["leak"], cluster["max_distance"]) == (300, False, 0.0)
    assert cluster["splits"] == [{"split": "data", "count": 300}]
    assert [m["name"] for m in cluster["members"]] == [f"copy_{i:03d}.png" for i in range(300)]


def test_copies_across_splits_are_one_leaking_cluster_beside_unrelated_images(tmp_path: Path) -> None:
    write_copies(tmp_path / "data" / "train", 3)
    write_copies(tmp_path / "data" / "test", 2)
    write_split(tmp_path / "data" / "valid", 4, 100)  # unrelated tiles: in no cluster
    duplicates = stats_json(tmp_path / "data", tmp_path / "stats.json")["duplicates"]
    assert duplicates["leaks"] == 1
    (cluster,) = duplicates["clusters"]
    assert (cluster["size"], cluster["leak"]) == (5, True)
    assert cluster["splits"] == [{"split": "test", "count": 2}, {"split": "train", "count": 3}]


def test_chained_matches_join_one_cluster_and_flat_images_match_nothing() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=256).astype(np.float32)
    step = rng.normal(size=256).astype(np.float32)
    vectors = [base + 0.25 * k * step for k in range(3)] + [rng.normal(size=256).astype(np.float32)]
    vectors = [(v - v.mean()) / np.linalg.norm(v - v.mean()) for v in vectors]
    prints = [ImageFingerprint(f"{i}.png", "train", v) for i, v in enumerate(vectors)]
    prints += [ImageFingerprint(f"flat{i}.png", "train", np.zeros(256, np.float32)) for i in range(3)]
    (cluster,) = find_near_duplicates(prints, threshold=0.05)
    assert cluster.members == (("train", "0.png"), ("train", "1.png"), ("train", "2.png"))
    assert 0 < cluster.max_distance <= 0.05


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-0.1", "1.5"])
def test_a_threshold_that_is_no_distance_is_refused(tmp_path: Path, value: str) -> None:
    write_copies(tmp_path / "data", 2)
    line = single_error_line(invoke("stats", tmp_path / "data", "--threshold", value))
    assert line.startswith("error: segkit stats: --threshold: must be a distance from 0 to 1, got "), line
    assert line.endswith("(0 finds exact copies only, unrelated images lie near 1; the default is 0.1)")


def test_json_onto_a_folder_is_refused_and_leaves_it_and_its_parent_alone(tmp_path: Path) -> None:
    write_copies(tmp_path / "data", 2)
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "mine.txt").write_bytes(b"keep me\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    line = single_error_line(invoke("stats", tmp_path / "data", "--json", folder))
    assert line == f"error: {folder}: is a folder; pass a file name for --json, e.g. {folder / 'stats.json'}"
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert [(p.name, p.read_bytes()) for p in folder.iterdir()] == [("mine.txt", b"keep me\n")]


def test_plots_onto_a_file_is_refused(tmp_path: Path) -> None:
    write_copies(tmp_path / "data", 2)
    (tmp_path / "plots").write_bytes(b"mine\n")
    line = single_error_line(invoke("stats", tmp_path / "data", "--plots", tmp_path / "plots"))
    assert line == f"error: {tmp_path / 'plots'}: is a file; pass a folder for --plots"
    assert (tmp_path / "plots").read_bytes() == b"mine\n"


def test_a_failed_atomic_write_leaves_no_temp_file(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError):
        write_atomic(tmp_path / "taken", "text\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
