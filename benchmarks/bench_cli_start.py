"""CLI start-up: wall time of ``segkit --help`` (and other TensorFlow-free commands) vs ``import tensorflow``.

    .venv/bin/python benchmarks/bench_cli_start.py [--repeats 7]

Each command runs ``--repeats`` times, interleaved (A B A B ...), as a fresh process from the
venv; the figure is the median wall time. Goal: ``segkit --help`` <= 0.25x of
``python -c 'import tensorflow'``. Also checks, in a fresh interpreter, that those commands leave
``tensorflow`` and ``keras`` out of ``sys.modules``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit.clock import load_average
from benchkit.project import ROOT, ensure_pairs, write_project
from benchkit.tables import machine, median, table

BIN = Path(sys.executable).parent
SEGKIT = BIN / "segkit"


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall


def imports_tensorflow(args: list[str]) -> bool:
    """Run the CLI in-process in a fresh interpreter and say whether TensorFlow/Keras got imported."""
    code = ("import sys\nfrom segkit.cli.main import main\nsys.argv = ['segkit', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "sys.__stdout__.write('\\nTF=' + str(any(m in sys.modules for m in ('tensorflow', 'keras'))) + '\\n')")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    return "TF=True" in done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(machine())
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="segkit-bench-cli-"))
    data = ensure_pairs(folder / "data", 8, side=64)
    project = write_project(folder, data, side=64)
    commands = {
        "python -c 'import tensorflow'": [sys.executable, "-c", "import tensorflow"],
        "segkit --help": [str(SEGKIT), "--help"],
        "segkit plugins": [str(SEGKIT), "plugins"],
        "segkit train --help": [str(SEGKIT), "train", "--help"],
        "segkit stats (8 pairs of 64x64)": [str(SEGKIT), "stats", str(project)],
        "project validation (load_project)": [
            sys.executable, "-c", f"from segkit.project import load_project; from segkit.plugins import get_registry; "
                                  f"load_project(__import__('pathlib').Path({str(project)!r}), [], get_registry())"],
    }
    for command in commands.values():  # warm the file cache once
        timed(command)
    walls: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, command in commands.items():
            walls[name].append(timed(command))
    base = median(walls["python -c 'import tensorflow'"])
    rows = []
    for name, values in walls.items():
        wall = median(values)
        goal = "<= 0.25" if name == "segkit --help" else ""
        rows.append([name, wall, min(values), wall / base, goal])
    print(f"\nmedian of {args.repeats} interleaved runs (load {load_average()})")
    print(table(rows, ["command", "median s", "min s", "/ import tensorflow", "goal"]))
    import shutil

    for argv in (["--help"], ["plugins"], ["stats", str(project)], ["train", "--help"]):
        shown = " ".join("PROJECT" if a == str(project) else a for a in argv)
        print(f"segkit {shown} imports TensorFlow: {imports_tensorflow(argv)}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
