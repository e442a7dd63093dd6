"""Each measured side in a fresh process that answers with one JSON line."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchkit.clock import peak_rss_mb
from benchkit.project import ROOT


def add_onednn_option(parser: Any) -> None:
    parser.add_argument("--onednn", default="default", choices=("default", "on", "off"),
                        help="TF_ENABLE_ONEDNN_OPTS for both sides ('default': TensorFlow's own, on for x86)")


def apply_onednn(choice: str) -> None:
    """Set ``TF_ENABLE_ONEDNN_OPTS`` for the workers started after this (they inherit it)."""
    if choice != "default":
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if choice == "on" else "0"


def add_worker_options(parser: Any) -> None:
    """The hidden options by which a benchmark runs one measured side in a fresh process."""
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", default="segkit", help=argparse.SUPPRESS)


def ran_as_worker(args: Any, run_worker: Any) -> bool:
    """Run ``run_worker(args)`` (segkit's side under ``$SEGKIT_BENCH_PATCH``) when started as a worker."""
    if not args.worker:
        return False
    if args.side == "segkit":
        apply_patch()
    run_worker(args)
    return True


def apply_patch() -> str:
    """Import ``$SEGKIT_BENCH_PATCH`` (a .py file) and call its ``patch()``: how a proposed change
    to segkit's core is A/B-measured before it is made. Returns the path, or "" when unset."""
    path = os.environ.get("SEGKIT_BENCH_PATCH", "")
    if path:
        import importlib.util

        spec = importlib.util.spec_from_file_location("segkit_bench_patch", path)
        assert spec is not None and spec.loader is not None, path
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.patch()
    return path


def emit(result: dict[str, Any]) -> None:
    """The worker's answer: one JSON line on stdout, with its peak RSS."""
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    if os.environ.get("SEGKIT_BENCH_PATCH"):
        result["patch"] = os.environ["SEGKIT_BENCH_PATCH"]
    print("RESULT " + json.dumps(result), flush=True)


def worker(script: Path, args: Sequence[str], timeout: float = 900) -> dict[str, Any]:
    """Run ``script --worker ARGS`` in a fresh interpreter and return its RESULT (plus wall time)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(script), "--worker", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "0"})
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"worker {script.name} {' '.join(args)} failed (exit {done.returncode})")
    result = json.loads(lines[-1][len("RESULT "):])
    result["process_wall_s"] = round(wall, 2)
    return result
