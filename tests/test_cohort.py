"""Cohorts on Dask (``segkit infer --slides``): a LocalCluster of 2 worker processes and a scheduler
with 2 workers started by hand, all on localhost; every run here stops by itself within its timeout."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from segkit.cohort.cluster import Scheduler, cohort_client
from segkit.cohort.plan import COHORT_MARKER, plan_cohort
from segkit.cohort.run import run_cohort
from segkit.engine.slide_plan import SlideOptions
from segkit.engine.slide_resume import partial_folder
from segkit.plugins import get_registry
from segkit.slides.outputs import slide_complete
from cli_results import invoke, single_error_line, snapshot
from segkit_process import environment, run_segkit, start_segkit
from slide_files import synthetic_slide, write_pyramid
from test_slide_infer import colour_project

STEMS = ("s0", "s1", "s2")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return colour_project(tmp_path_factory.mktemp("colour"), 0.5)


def write_slide(path: Path, seed: int, repeat: int = 1) -> None:
    """A small synthetic slide (320 x 256, glass around), tiled ``repeat`` times each way for a bigger one."""
    image, _, _ = synthetic_slide(320, 256, seed=seed, tile=64, margin=64)
    write_pyramid(path, np.tile(image, (repeat, repeat, 1)), style="aperio", microns_per_pixel=0.5, tile=64,
                  levels=3)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cohort")
    for seed, stem in enumerate(STEMS):
        write_slide(folder / f"{stem}.svs", seed)
    return folder


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory, project: Any, cohort: Path) -> Path:
    """The cohort's slides segmented by plain ``segkit infer`` in this process: the reference."""
    out = tmp_path_factory.mktemp("single") / "masks"
    result = invoke("infer", project.source, cohort, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with cohort_client(Scheduler("local"), 2) as running:
        yield running


def table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def record_without_time(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text())
    document["summary"].pop("seconds")
    document["summary"].pop("slide")
    return document


def assert_same_outputs(out: Path, reference: Path, stems: tuple[str, ...]) -> None:
    for stem in stems:
        for name in (f"{stem}.tissue.png", f"{stem}.mask.ome.tif"):
            assert (out / name).read_bytes() == (reference / name).read_bytes(), name
        assert record_without_time(out / f"{stem}.slide.json") == record_without_time(reference / f"{stem}.slide.json")


def test_a_local_cluster_of_two_workers_writes_what_the_single_process_run_writes_loading_the_model_once_each(
        project: Any, cohort: Path, single: Path, client: Any, tmp_path: Path) -> None:
    plan = plan_cohort(project, cohort, tmp_path / "out", get_registry(), SlideOptions())
    result = run_cohort(project, plan, client)
    assert [row["status"] for row in result.rows] == ["done"] * 3
    assert_same_outputs(tmp_path / "out", single, STEMS)
    rows, reference = table(tmp_path / "out" / "cohort.csv"), table(single / "slides.csv")
    for row, expected in zip(rows, reference):
        assert {key: row[key] for key in expected if key != "seconds"} == {
            key: value for key, value in expected.items() if key != "seconds"}
    # one model load per worker process, whichever slides it took
    assert {row["model_loads"] for row in rows} == {"1"}
    assert len({row["pid"] for row in rows}) <= 2 and str(os.getpid()) not in {row["pid"] for row in rows}
    assert (tmp_path / "out" / "cohort.parquet").is_file()


def test_a_corrupt_slide_fails_its_own_row_the_others_complete_and_the_exit_code_is_3(
        project: Any, cohort: Path, single: Path, tmp_path: Path) -> None:
    slides = tmp_path / "slides"
    slides.mkdir()
    for stem in STEMS:
        (slides / f"{stem}.svs").write_bytes((cohort / f"{stem}.svs").read_bytes())
    broken = (cohort / "s1.svs").read_bytes()
    (slides / "broken.svs").write_bytes(broken[: len(broken) // 3])  # a copy cut short
    out = tmp_path / "out"
    result = invoke("infer", project.source, "--slides", slides, "--out", out, "--workers", "2")
    assert result.exit_code == 3, result.output
    rows = {Path(row["slide"]).stem: row for row in table(out / "cohort.csv")}
    assert rows["broken"]["status"] == "failed" and "broken.svs" in rows["broken"]["reason"]
    assert [rows[stem]["status"] for stem in STEMS] == ["done"] * 3
    assert_same_outputs(out, single, STEMS)
    assert not list(out.glob("broken.*"))  # nothing of the failed slide under a final name
    assert "running on a local cluster of 2 worker process(es); Dask dashboard: http://" in result.output
    assert "failed: 'broken.svs':" in result.output and "3 segmented, 0 skipped (already done), 1 failed" in (
        result.output)


def _kill_the_worker_segmenting(client: Any, partial: Path, killed: list[int]) -> None:
    """Once ``partial`` appears (the slide is being segmented), SIGKILL the worker process holding its task."""
    deadline = time.monotonic() + 60
    while not partial.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    pids = client.run(os.getpid)
    for address, keys in client.processing().items():
        if keys:
            killed.append(pids[address])
            os.kill(pids[address], signal.SIGKILL)


def test_a_worker_killed_during_a_slide_leaves_it_to_the_other_worker_which_completes_it(
        project: Any, client: Any, tmp_path: Path) -> None:
    from segkit.engine.slide_infer import segment_slide

    slides = tmp_path / "slides"
    slides.mkdir()
    write_slide(slides / "big.svs", seed=7, repeat=6)  # about 1,900 x 1,500: seconds on a worker
    plan = plan_cohort(project, slides, tmp_path / "out", get_registry(), SlideOptions())
    killed: list[int] = []
    watcher = threading.Thread(target=_kill_the_worker_segmenting,
                               args=(client, partial_folder(plan.slides[0].outputs), killed))
    watcher.start()
    result = run_cohort(project, plan, client)
    watcher.join()
    row = result.rows[0]
    assert len(killed) == 1 and row["status"] == "done", (killed, row)
    assert row["pid"] != killed[0]
    assert slide_complete(plan.slides[0].outputs, plan.digest)
    (tmp_path / "direct").mkdir()
    direct = segment_slide(project, slides / "big.svs", tmp_path / "direct", get_registry())
    np.testing.assert_array_equal(tifffile.imread(plan.slides[0].outputs.mask), tifffile.imread(direct.mask))


def test_a_rerun_after_sigterm_segments_only_the_slides_left_and_keeps_the_finished_ones(
        project: Any, tmp_path: Path) -> None:
    slides, out = tmp_path / "slides", tmp_path / "out"
    slides.mkdir()
    for seed in range(5):
        write_slide(slides / f"c{seed}.svs", seed, repeat=3)
    args = ["infer", project.source, "--slides", slides, "--out", out, "--workers", "1", "--quiet"]
    running = start_segkit(args)
    deadline = time.monotonic() + 120
    while not list(out.glob("*.slide.json")) and time.monotonic() < deadline and running.poll() is None:
        time.sleep(0.05)
    running.send_signal(signal.SIGTERM)
    stdout, _ = running.communicate(timeout=120)
    assert running.returncode == 143, stdout
    assert "interrupted by SIGTERM" in stdout and "Traceback" not in stdout, stdout
    first = {Path(row["slide"]).stem: row["status"] for row in table(out / "cohort.csv")}
    # a done row has its record on disk; a slide whose task was running may still finish as the workers stop
    finished = sorted(path.name.removesuffix(".slide.json") for path in out.glob("*.slide.json"))
    assert {stem for stem, status in first.items() if status == "done"} <= set(finished), (first, finished)
    assert "pending" in first.values() and 0 < len(finished) < len(first), (first, finished)
    kept = {stem: (out / f"{stem}.mask.ome.tif").stat().st_mtime_ns for stem in finished}
    again = run_segkit(args, timeout=300)
    assert again.returncode == 0, again.stdout
    second = {Path(row["slide"]).stem: row["status"] for row in table(out / "cohort.csv")}
    assert second == {stem: "skipped" if stem in finished else "done" for stem in first}
    assert {stem: (out / f"{stem}.mask.ome.tif").stat().st_mtime_ns for stem in finished} == kept
    assert not list(out.glob(".*.segkit-partial"))


def test_a_stop_noted_while_the_cluster_started_submits_nothing_and_leaves_every_slide_pending(
        project: Any, client: Any, cohort: Path, tmp_path: Path) -> None:
    from segkit.stop_signals import StopRequest

    stop = StopRequest()
    stop.note("SIGTERM")  # as the handler does for a signal that came while the workers were starting
    plan = plan_cohort(project, cohort, tmp_path / "out", get_registry(), SlideOptions())
    result = run_cohort(project, plan, client, stop=stop)
    assert [row["status"] for row in result.rows] == ["pending"] * len(STEMS)
    assert [row["status"] for row in table(plan.table)] == ["pending"] * len(STEMS)
    assert not any(client.processing().values())  # no worker was given a slide
    assert not list(plan.out.glob("*.slide.json"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _dask(*args: str) -> subprocess.Popen[str]:
    command = [str(Path(sys.executable).with_name("dask")), *args]
    return subprocess.Popen(command, env=environment(), text=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def test_a_cohort_runs_against_a_scheduler_and_two_workers_started_by_hand(
        project: Any, cohort: Path, single: Path, tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    port = address.rsplit(":", 1)[1]
    scheduler = _dask("scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard")
    workers = _dask("worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard")
    try:
        out = tmp_path / "out"
        result = run_segkit(["infer", project.source, "--slides", cohort, "--out", out, "--scheduler", address],
                            timeout=300)
        assert result.returncode == 0, result.stdout
        assert f"running on the scheduler at {address}" in result.stdout
        rows = table(out / "cohort.csv")
        assert [row["status"] for row in rows] == ["done"] * 3
        assert_same_outputs(out, single, STEMS)
    finally:
        for process in (workers, scheduler):
            process.terminate()
            process.wait(timeout=60)


def test_a_scheduler_that_does_not_answer_is_one_line_within_seconds(project: Any, cohort: Path,
                                                                     tmp_path: Path) -> None:
    started = time.monotonic()
    result = invoke("infer", project.source, "--slides", cohort, "--out", tmp_path / "out", "--scheduler",
                    f"tcp://127.0.0.1:{_free_port()}")
    line = single_error_line(result)
    assert time.monotonic() - started < 30
    assert "--scheduler: no Dask scheduler answered at tcp://127.0.0.1:" in line and "dask scheduler" in line


def test_a_folder_of_no_slides_a_list_naming_missing_ones_and_misused_options_are_one_line_each(
        project: Any, cohort: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no slides here\n")
    out = tmp_path / "out"
    listed = tmp_path / "cohort.txt"
    listed.write_text(f"# the study\n{cohort / 's0.svs'}\nmissing-1.svs\n\n{tmp_path / 'gone.svs'}\n")
    cases = {
        ("--slides", empty): "holds no slides",
        ("--slides", listed): "2 of 3 slide(s) it names do not exist (line 3: ",
        ("--slides", cohort, "--scheduler", "yarn"): "--scheduler: 'yarn' is not local, a scheduler address",
        ("--slides", cohort, "--workers", "0"): "--workers: 0 is not a number of workers",
        ("--scheduler", "local"): "--scheduler: runs a cohort of slides on a Dask cluster; add --slides",
        ("--slides", cohort, cohort / "s0.svs"): "--slides: gives the cohort's slides; leave out the files",
        ("--slides", cohort, "--region", "0,0,64,64"): "--region: a region is of one slide",
    }
    for args, expected in cases.items():
        line = single_error_line(invoke("infer", project.source, *args, "--out", out))
        assert expected in line, (args, line)
    assert not out.exists()


def test_an_output_folder_holding_another_models_slides_or_cohort_is_refused_unless_overwrite(
        project: Any, cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "other.slide.json").write_text(json.dumps({"model_sha256": "f" * 64, "summary": {}}) + "\n")
    before = snapshot(out)
    line = single_error_line(invoke("infer", project.source, "--slides", cohort, "--out", out))
    assert "holds 1 slide(s) segmented by another model (e.g. 'other.slide.json')" in line, line
    (out / "other.slide.json").unlink()
    (out / COHORT_MARKER).write_text(json.dumps({"model_sha256": "e" * 64}) + "\n")
    line = single_error_line(invoke("infer", project.source, "--slides", cohort, "--out", out))
    assert f"the marker of a cohort of another model ({COHORT_MARKER})" in line, line
    assert snapshot(out).keys() == {COHORT_MARKER} and before.keys() == {"other.slide.json"}
    (out / COHORT_MARKER).unlink()
    (out / "s0.tissue.png").write_bytes(b"a user's file")
    line = single_error_line(invoke("infer", project.source, "--slides", cohort, "--out", out))
    assert "the cohort would replace 1 file(s) segkit did not write ('s0.tissue.png')" in line, line
    (out / COHORT_MARKER).write_text(json.dumps({"model_sha256": "e" * 64}) + "\n")
    result = invoke("infer", project.source, "--slides", cohort, "--out", out, "--overwrite", "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads((out / COHORT_MARKER).read_text())["model_sha256"] != "e" * 64
    assert (out / "s0.tissue.png").read_bytes() != b"a user's file"


_PAGE_FAULTS = """
import resource
import numpy as np
from segkit.cohort.worker import restore_malloc_thresholds

def faults() -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(200):
        block = np.ones(2**20 // 8)  # 1 MiB: a tile's softmax, above the 128 KiB the variable pins mmap at
        del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

pinned = faults()
print(pinned, restore_malloc_thresholds(), faults())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt, on Linux only")
def test_a_worker_undoes_the_nannys_malloc_trim_threshold_so_arrays_stop_faulting_in_afresh() -> None:
    faults = {}
    for setting in ("65536", None):
        env = environment()
        env.pop("MALLOC_TRIM_THRESHOLD_", None)
        if setting is not None:
            env["MALLOC_TRIM_THRESHOLD_"] = setting  # what Dask's nanny gives each worker it starts
        printed = subprocess.run([sys.executable, "-c", _PAGE_FAULTS], env=env, capture_output=True, text=True,
                                 timeout=120, check=True).stdout.split()
        faults[setting] = (int(printed[0]), printed[1], int(printed[2]))
    pinned, undone, after = faults["65536"]
    assert undone == "True" and pinned > 200 * 100 and after < pinned / 20, faults  # 256 pages a block, then reused
    assert faults[None][1] == "False"  # nothing to undo where the variable is not set
