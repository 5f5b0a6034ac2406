"""Every tutorial runs with --quick, exits 0, and writes the figures its docstring promises."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("[0-9][0-9]_*.py"))


def promised_figures(script: Path) -> list[str]:
    """Figure names listed in the docstring's 'Draws:' lines, e.g. figures/04_train_lenet/curve.png."""
    return re.findall(r"figures/[\w]+/([\w]+\.png)", script.read_text())


def test_there_are_tutorials():
    assert len(TUTORIALS) >= 3


@pytest.mark.parametrize("script", TUTORIALS, ids=[t.stem for t in TUTORIALS])
def test_tutorial_runs_quick(script, tmp_path, request):
    if "load_mnist" in script.read_text():
        request.getfixturevalue("mnist_data")  # skips without MNIST, but fails when CI is set
    env = dict(os.environ, MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, str(script), "--quick", "--figures", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in promised_figures(script):
        figure = tmp_path / name
        assert figure.exists() and figure.stat().st_size > 1000, f"{script.name} did not write {name}"
