"""The whole-slide benchmarks (benchmarks/bench_slide_{memory,throughput,background}.py, bench_cohort.py) run: each
script's ``--smoke`` case (tiny slides and model, one process) prints figures that add up."""

from __future__ import annotations

import json
import re
import runpy
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


@pytest.fixture
def smoke(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[[str], str]:
    """What ``benchmarks/<script> --smoke`` printed, run as ``__main__`` in this process (whose
    TensorFlow the other tests have started already: a fresh process per script would cost more than
    the runs). The scripts' smoke cases run their "workers" in-process too."""

    def run(script: str) -> str:
        monkeypatch.setattr(sys, "argv", [str(BENCHMARKS / script), "--smoke"])
        monkeypatch.setattr(sys, "path", list(sys.path))  # the script's own entries leave with it
        capsys.readouterr()
        runpy.run_path(str(BENCHMARKS / script), run_name="__main__")
        return capsys.readouterr().out

    return run


def test_memory_smoke_reports_a_peak_per_slide_and_reads_exactly_the_tissue_tiles(smoke: Callable[[str], str]) -> None:
    printed = smoke("bench_slide_memory.py")
    cases = {match[1]: json.loads(match[2]) for match in re.finditer(r"^[a-z ]+: (\d+ x \d+): (\{.*\})$", printed, re.M)}
    assert set(cases) == {"512 x 512", "1024 x 1024", "512 x 2048"}
    for size, case in cases.items():
        width, height = (int(side) for side in size.split(" x "))
        assert case["peak_rss_mb"] >= case["baseline_mb"] > 100  # TensorFlow alone takes more
        assert case["tiles"] == case["grid_tiles"] > 0  # the tissue mask found the tissue box, no more, no less
        tissue = (width - 128) * (height - 128) / 1e6  # a 64-pixel glass margin
        assert abs(case["tissue_mp"] - tissue) < 0.1 * tissue
        assert 0 < case["model_s"] < case["seconds"]
    growth = re.findall(r"^growth (square|same width): " + NUMBER + r" -> " + NUMBER + r" MiB = ([+-][0-9.]+)%",
                        printed, re.M)
    assert [name for name, *_ in growth] == ["square", "same width"]
    for _, smallest, largest, percent in growth:
        assert float(percent) == round(100 * (float(largest) / float(smallest) - 1), 1)


def test_throughput_smoke_compares_the_same_tiles_and_reports_gflops(smoke: Callable[[str], str]) -> None:
    printed = smoke("bench_slide_throughput.py")
    cut, on_box = (int(n) for n in re.search(r"^(\d+) tiles cut out; (\d+) grid tiles on the tissue box$",
                                             printed, re.M).groups())  # type: ignore[union-attr]
    assert cut == on_box > 0
    runs = re.findall(r"^\[round 1\] (slide|images|model) +" + NUMBER + r" s, model +" + NUMBER + r" s, (\d+) tiles",
                      printed, re.M)
    assert [side for side, *_ in runs] == ["slide", "images", "model"]
    for side, seconds, model_s, tiles in runs:
        assert int(tiles) == cut and 0 < float(model_s) <= float(seconds)
        assert (float(model_s) == float(seconds)) == (side == "model")  # the ceiling is all model
    tables = [line.split() for line in printed.splitlines() if re.match(r"^(slide|images|model) +[0-9]", line)]
    rows = {row[0]: [float(v) for v in row[1:]] for row in tables if len(row) == 7}  # wall time
    per_cpu = {row[0]: [float(v) for v in row[1:]] for row in tables if len(row) == 6}  # CPU time
    assert set(rows) == set(per_cpu) == {"slide", "images", "model"}
    for side, (seconds, mp_s, mp_model_s, gflops, share, outside) in rows.items():
        assert seconds > 0 and mp_s > 0 and mp_model_s >= mp_s and gflops > 0 and share > 0 and 0 <= outside < 100, side
    assert rows["model"][-1] == per_cpu["model"][-1] == 0
    for side, (cpu_s, mp_cpu_s, gflops, share, outside) in per_cpu.items():
        assert cpu_s > 0 and mp_cpu_s > 0 and gflops > 0 and share > 0 and outside < 100, side
    ceiling = float(re.search(r"^slide / model alone: " + NUMBER + "x", printed, re.M)[1])  # type: ignore[index]
    assert ceiling == pytest.approx(rows["slide"][1] / rows["model"][1], rel=0.05)
    ratio = float(re.search(r"^slide / images: " + NUMBER + "x", printed, re.M)[1])  # type: ignore[index]
    assert ratio == pytest.approx(rows["slide"][1] / rows["images"][1], rel=0.05) and ratio > 0  # cells are rounded


def test_background_smoke_reads_only_the_tissue_tiles_of_the_glass_slide(smoke: Callable[[str], str]) -> None:
    printed = smoke("bench_slide_background.py")
    rows = {row[0]: row[1:] for row in (line.split() for line in printed.splitlines())
            if row and row[0] in ("tissue", "glass70") and len(row) == 7}
    assert set(rows) == {"tissue", "glass70"}
    tiles = {name: int(row[3]) for name, row in rows.items()}
    assert tiles == {name: int(row[4]) for name, row in rows.items()}  # read = on the tissue box
    assert tiles["tissue"] == 16 * 16  # 768 px, 64-px tiles overlapping by 16: every tile of the grid
    assert 0.25 < tiles["glass70"] / tiles["tissue"] < 0.45  # 30% of the area, plus the box's edge tiles
    time_ratio, cpu_ratio, tile_ratio = re.search(
        r"^70% glass / all tissue: " + NUMBER + r"x time \(goal <= 0.4\), " + NUMBER + r"x CPU time, " + NUMBER
        + "x tiles$", printed, re.M).groups()  # type: ignore[union-attr]
    assert float(time_ratio) == pytest.approx(float(rows["glass70"][0]) / float(rows["tissue"][0]), rel=0.05)
    assert float(cpu_ratio) == pytest.approx(float(rows["glass70"][1]) / float(rows["tissue"][1]), rel=0.05)
    assert float(tile_ratio) == round(tiles["glass70"] / tiles["tissue"], 2)


def test_cohort_smoke_times_the_single_process_and_one_and_two_workers_on_the_same_slides(
        smoke: Callable[[str], str]) -> None:
    printed = smoke("bench_cohort.py")
    runs = re.findall(r"^\[round 1\] (single|cohort1|cohort2) +" + NUMBER + r" s, startup +" + NUMBER
                      + r" s, slide time +" + NUMBER + r" s, (\d+) slides", printed, re.M)
    assert [side for side, *_ in runs] == ["single", "cohort1", "cohort2"]
    for side, seconds, startup, slide_s, slides in runs:
        assert int(slides) == 2 and 0 < float(slide_s) and float(startup) < float(seconds), side
        assert (float(startup) == 0) == (side == "single")  # only a cohort starts a cluster
    walls = {side: float(seconds) for side, seconds, *_ in runs}
    rows = {row[0]: [float(v) for v in row[1:]] for row in (line.split() for line in printed.splitlines())
            if row and row[0] in walls and len(row) == 6}
    for side, (wall, per_hour, *_) in rows.items():
        assert wall == pytest.approx(walls[side], abs=0.01) and per_hour == pytest.approx(7200 / wall, rel=0.01)
    overhead = float(re.search(r"= ([+-][0-9.]+)% \(goal <= 5%\)$", printed, re.M)[1])  # type: ignore[index]
    # from the unrounded medians: a smoke wall of a second or two printed to 0.01 s moves the ratio by 1%
    assert overhead == pytest.approx(100 * (walls["cohort1"] / walls["single"] - 1), rel=0.02, abs=0.5)
    speed_up, efficiency = (float(v) for v in re.search(  # type: ignore[union-attr]
        r"^scaling 1 -> 2 workers: " + NUMBER + r"x slides per hour = efficiency " + NUMBER + "$", printed, re.M).groups())
    assert speed_up == pytest.approx(walls["cohort1"] / walls["cohort2"], abs=0.01)
    assert efficiency == pytest.approx(speed_up / 2, abs=0.01)
