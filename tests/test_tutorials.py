"""Every tutorial runs with --quick, exits 0, and writes the figures its docstring promises.

A tutorial names its own file (``parse_args(__doc__, "NN_name.py")``: a notebook has no ``__file__``), and
``$MINILOTTERY_QUICK`` asks for quick mode as ``--quick`` does. The notebooks are tested in test_notebooks.py.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from minilottery.lab.tutorial import QUICK_ENV, figure_folder, in_notebook, quick_from_environment

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("[0-9][0-9]_*.py"))


def promised_figures(script: Path) -> list[str]:
    """Figure names listed in the docstring's 'Draws:' lines, e.g. figures/05_train_lenet/curve.png."""
    return re.findall(r"figures/[\w]+/([\w]+\.png)", script.read_text())


def test_there_are_tutorials():
    assert len(TUTORIALS) >= 3


@pytest.mark.parametrize("script", TUTORIALS, ids=[t.stem for t in TUTORIALS])
def test_tutorial_names_its_own_file(script):
    assert re.findall(r'parse_args\(__doc__, "([^"]+)"', script.read_text()) == [script.name]


def test_quick_mode_from_the_environment(monkeypatch):
    for value, quick in [("1", True), (" 1 ", True), ("0", False), ("", False)]:
        monkeypatch.setenv(QUICK_ENV, value)
        assert quick_from_environment() is quick
    monkeypatch.delenv(QUICK_ENV)
    assert quick_from_environment() is False
    monkeypatch.setenv(QUICK_ENV, "yes")
    with pytest.raises(ValueError, match=f"^{QUICK_ENV} must be 1 \\(quick mode\\) or 0, got 'yes'; set it to 1"):
        quick_from_environment()


def test_a_script_draws_beside_itself(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # not the working folder: the script's own
    monkeypatch.setattr(sys, "argv", [str(TUTORIALS[0]), "--quick"])
    assert not in_notebook()
    assert figure_folder(TUTORIALS[0].name) == TUTORIALS[0].parent / "figures" / TUTORIALS[0].stem


def test_a_script_takes_quick_mode_from_the_environment(tmp_path):
    script = next(t for t in TUTORIALS if t.stem == "01_arrays_and_backend")  # quick mode: smaller products
    env = dict(os.environ, MPLBACKEND="Agg", **{QUICK_ENV: "1"})
    result = subprocess.run([sys.executable, str(script), "--figures", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "n=  512" in result.stdout and "n= 1024" not in result.stdout
    env[QUICK_ENV] = "yes"
    result = subprocess.run([sys.executable, str(script), "--figures", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2 and result.stderr.splitlines()[-1].startswith(
        f"01_arrays_and_backend.py: error: {QUICK_ENV} must be 1"), result.stderr


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
