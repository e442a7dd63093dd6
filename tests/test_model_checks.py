"""A model's own rules are checked before the run folder is touched and before TensorFlow loads.

``ModelSpec.check`` (FlexUNet's size rule) runs first in ``segkit train``: a size the model
cannot take ends in one line, exit 2, with every byte of an earlier run where it was.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from segkit_process import block_imports, output_of, run_python
from tiny_data import write_tiny_project

#: What an earlier run left in the tiny project's output folder (the layout ``segkit train`` writes).
EARLIER_RUN = {
    "models/best_model.keras": b"the earlier best model",
    "eval/train_losses.csv": b"epoch,loss,val_loss\n1,0.5,0.6\n",
    "project.resolved.toml": b'[project]\nname = "tiny"\n',
}

#: ``segkit ARGS`` in a process where importing TensorFlow or Keras fails.
WITHOUT_TENSORFLOW = block_imports(["tensorflow", "keras"]) + (
    "sys.argv = ['segkit', *sys.argv[1:]]\nfrom segkit.cli.main import main\nmain()\n")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = write_tiny_project(tmp_path, epochs=1)
    for name, data in EARLIER_RUN.items():
        (tmp_path / "run" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "run" / name).write_bytes(data)
    return project


def test_a_size_flexunet_cannot_take_keeps_the_earlier_run(project: Path) -> None:
    """Issue 25 defect 1: ``--set model.image_width=65 --overwrite`` deleted the run, then failed."""
    run = project.parent / "run"
    before = snapshot(run)
    result = run_python(WITHOUT_TENSORFLOW, ["train", project, "--set", "model.image_width=65", "--overwrite"])
    assert result.returncode == 2, output_of(result)
    expected = (f"error: {project}: model: image_width=65 is not divisible by 4 (2**(num_layers-1) with "
                "num_layers=3); nearest valid sizes: 64 or 68")
    assert result.stdout.splitlines() == [expected]
    assert snapshot(run) == before
