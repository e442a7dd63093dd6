"""Running ``segkit`` and plain Python in fresh processes, as a user's shell or a server would.

``run_*`` wait for the process and return what it printed; ``start_*`` return it running, for tests
that talk to it, signal it or run several at once. Output is text, stdout and stderr together in
``stdout`` unless ``stderr_apart`` (then in ``stderr``), or stdout into ``to_file``.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

#: The CLI's entry point, without relying on the console script being on PATH.
SEGKIT = [sys.executable, "-c", "from segkit.cli.main import main; main()"]


def environment(pythonpath: Sequence[Path] = (), **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGKIT_")}
    # the caller's PYTHONPATH comes after ours: a checkout tested through PYTHONPATH (a git worktree
    # beside an editable install) must stay the code the subprocess runs
    inherited = [part for part in os.environ.get("PYTHONPATH", "").split(os.pathsep) if part]
    env.update(TF_CPP_MIN_LOG_LEVEL="3", COLUMNS="250",
               PYTHONPATH=os.pathsep.join([*(str(p) for p in pythonpath), *inherited]))
    env.update(extra)
    return env


def _options(pythonpath: Sequence[Path], cwd: Path | None, stderr_apart: bool, to_file: IO[str] | None,
             extra: dict[str, str]) -> dict[str, Any]:
    """What ``subprocess.run`` and ``Popen`` get alike: the environment, the folder, where output goes."""
    return {"env": environment(pythonpath, **extra), "cwd": cwd, "text": True,
            "stdout": subprocess.PIPE if to_file is None else to_file,
            "stderr": subprocess.PIPE if stderr_apart else subprocess.STDOUT}


def _python(script: str, args: Sequence[str | Path]) -> list[str]:
    return [sys.executable, "-c", script, *map(str, args)]


def run_segkit(args: Sequence[str | Path], pythonpath: Sequence[Path] = (), timeout: int = 300,
               cwd: Path | None = None, stderr_apart: bool = False, to_file: IO[str] | None = None,
               **extra: str) -> subprocess.CompletedProcess[str]:
    """``segkit ARGS`` in a new process, its output captured; ``extra`` are environment variables."""
    return subprocess.run([*SEGKIT, *map(str, args)], timeout=timeout, check=False,
                          **_options(pythonpath, cwd, stderr_apart, to_file, extra))


def run_python(script: str, args: Sequence[str | Path] = (), pythonpath: Sequence[Path] = (), timeout: int = 300,
               cwd: Path | None = None, stderr_apart: bool = False, **extra: str) -> subprocess.CompletedProcess[str]:
    """A Python script in a new process (``-c``), its output captured."""
    return subprocess.run(_python(script, args), timeout=timeout, check=False,
                          **_options(pythonpath, cwd, stderr_apart, None, extra))


def start_segkit(args: Sequence[str | Path], pythonpath: Sequence[Path] = (), cwd: Path | None = None,
                 stderr_apart: bool = False, **extra: str) -> subprocess.Popen[str]:
    """``segkit ARGS`` started in a new process and left running (read it with ``communicate``)."""
    return subprocess.Popen([*SEGKIT, *map(str, args)], **_options(pythonpath, cwd, stderr_apart, None, extra))


def start_python(script: str, args: Sequence[str | Path] = (), pythonpath: Sequence[Path] = (),
                 stderr_apart: bool = False, with_stdin: bool = False, **extra: str) -> subprocess.Popen[str]:
    """A Python script started in a new process (``-c``); ``with_stdin`` gives it a pipe to read."""
    return subprocess.Popen(_python(script, args), stdin=subprocess.PIPE if with_stdin else None,
                            **_options(pythonpath, None, stderr_apart, None, extra))


def block_imports(names: Sequence[str]) -> str:
    """Script lines after which ``import NAME`` fails: proof that what follows needs none of them."""
    return "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in names)


def output_of(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}"


def imported_by_listing_and_validation(project: Path, modules: Sequence[str], then: str = "") -> list[str]:
    """Which of ``modules`` a fresh process has imported after ``segkit plugins``' listing, loading
    ``project`` and the statements ``then``: what must stay out of listing and validation."""
    result = run_python(
        "import sys\nfrom pathlib import Path\nfrom segkit.project import load_project\n"
        "from segkit.cli.plugins_command import describe\nfrom segkit.plugins import get_registry\n"
        f"describe(get_registry())\nload_project(Path({str(project)!r}))\n{then}\n"
        f"print(sorted(m for m in {tuple(modules)!r} if m in sys.modules))\n")
    last = (result.stdout.strip().splitlines() or [""])[-1]
    assert result.returncode == 0 and last.startswith("["), output_of(result)
    return list(ast.literal_eval(last))
