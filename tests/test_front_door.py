"""The package's front door: ``import minilottery`` exposes the main API, and its docstring's tour runs."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minilottery
from minilottery.data import Dataset


def test_the_main_api_is_one_import_away():
    for name in ("build_model", "train", "TrainConfig", "run_imp", "IMPConfig", "load_mnist", "check_layer",
                 "magnitude_prune", "Sequential", "ReferenceConv2d", "make_optimizer"):
        assert name in dir(minilottery) and name in minilottery.__all__
    assert all(hasattr(minilottery, name) for name in minilottery.__all__)


@pytest.mark.filterwarnings("ignore::minilottery.training.ChanceLevelWarning")  # 20 iterations on noise
def test_the_docstring_tour_runs_as_written(monkeypatch, capsys):
    """Every line of the tour, on a small synthetic stand-in for MNIST (the real data is tested elsewhere)."""
    rng = np.random.default_rng(0)

    def split(n):
        return rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n)

    small = Dataset(*split(240), *split(60), *split(60), name="synthetic")
    monkeypatch.setattr(minilottery, "load_mnist", lambda *args, **kwargs: small)
    tour = re.search(r"::\n\n((?:    .*\n)+)", minilottery.__doc__).group(1)
    code = "\n".join(line[4:] for line in tour.splitlines()).replace("iterations=1000", "iterations=20")
    exec(compile(code, "minilottery.__doc__", "exec"), {})
    printed = capsys.readouterr().out
    assert "IMPResult(model='lenet_300_100', rounds=3)" in printed
    assert "RoundResult(index=2, percent_remaining=" in printed


def test_importing_the_package_loads_neither_cupy_nor_the_lab():
    code = ("import sys, minilottery; "
            "print(sorted(m for m in sys.modules if m == 'cupy' or m.startswith('minilottery.lab')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_core_module_imports_the_lab():
    """The textbook core reads without the lab: no module outside ``minilottery/lab`` imports from it."""
    root = Path(minilottery.__file__).parent
    # __main__.py is ``python -m minilottery``, the command line: the lab's door, not the core's
    core = [p for p in root.rglob("*.py") if "lab" not in p.relative_to(root).parts and p.name != "__main__.py"]
    assert len(core) > 20
    offenders = [str(p.relative_to(root)) for p in core
                 if re.search(r"^\s*(from|import) minilottery\.lab\b|from minilottery import lab\b", p.read_text(),
                              re.MULTILINE)]
    assert offenders == []
