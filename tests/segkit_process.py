"""Running ``segkit`` and plain Python in fresh processes, as a user's shell or a server would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

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


def run_segkit(args: Sequence[str], pythonpath: Sequence[Path] = (), timeout: int = 300,
               **extra: str) -> subprocess.CompletedProcess[str]:
    """``segkit ARGS`` in a new process; stdout and stderr together in ``.stdout``."""
    return subprocess.run([*SEGKIT, *map(str, args)], env=environment(pythonpath, **extra), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False)


def run_python(script: str, args: Sequence[str] = (), pythonpath: Sequence[Path] = (), timeout: int = 300,
               cwd: Path | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    """A Python script in a new process (``-c``), its output captured."""
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], env=environment(pythonpath, **extra),
                          text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                          cwd=cwd, check=False)


def block_imports(names: Sequence[str]) -> str:
    """Script lines after which ``import NAME`` fails: proof that what follows needs none of them."""
    return "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in names)


def output_of(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}"

