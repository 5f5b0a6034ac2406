"""Every tutorial runs with --quick and with --class, exits 0, and writes the figures its docstring promises,
each with a 'what to look for' line.

A tutorial names its own file (``parse_args(__doc__, "NN_name.py")``: a notebook has no ``__file__``), and
``$MINILOTTERY_QUICK`` (``$MINILOTTERY_CLASS``) asks for quick mode (the class size) as ``--quick`` (``--class``)
does. A recorded run goes to a folder named by its settings (``run_folder``). The notebooks are tested in
test_notebooks.py.
"""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from minilottery.imp import IMPConfig
from minilottery.lab.tutorial import (
    CLASS_ENV,
    QUICK_ENV,
    by_size,
    figure_folder,
    in_notebook,
    quick_from_environment,
    run_folder,
    save_figure,
    size_from,
)
from minilottery.training import TrainConfig
from tests.helpers import synthetic_data

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
    env = {name: value for name, value in os.environ.items() if name != CLASS_ENV}  # one size asked for
    env.update(MPLBACKEND="Agg", **{QUICK_ENV: "1"})
    result = subprocess.run([sys.executable, str(script), "--figures", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "n=  512" in result.stdout and "n= 1024" not in result.stdout
    env[QUICK_ENV] = "yes"
    result = subprocess.run([sys.executable, str(script), "--figures", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2 and result.stderr.splitlines()[-1].startswith(
        f"01_arrays_and_backend.py: error: {QUICK_ENV} must be 1"), result.stderr


def run_tutorial(script: Path, size: str, figures: Path, request, timeout: int) -> None:
    """Runs ``script --<size>``: it exits 0, writes every figure its docstring promises, and prints a 'what to
    look for' line after every figure it saves."""
    if "load_mnist" in script.read_text():
        request.getfixturevalue("mnist_data")  # skips without MNIST, but fails when CI is set
    env = {name: value for name, value in os.environ.items() if name not in (QUICK_ENV, CLASS_ENV)}
    env["MPLBACKEND"] = "Agg"
    result = subprocess.run(
        [sys.executable, str(script), f"--{size}", "--figures", str(figures)],
        capture_output=True, text=True, env=env, timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in promised_figures(script):
        figure = figures / name
        assert figure.exists() and figure.stat().st_size > 1000, f"{script.name} did not write {name}"
    lines = result.stdout.splitlines()
    saved = [i for i, line in enumerate(lines) if line.startswith("figure: ")]
    assert saved, f"{script.name} saved no figure"
    for i in saved:
        assert i + 1 < len(lines) and re.match(r"what to look for: \S", lines[i + 1]), \
            f"{script.name}: no 'what to look for' line after {lines[i]}"


@pytest.mark.parametrize("script", TUTORIALS, ids=[t.stem for t in TUTORIALS])
def test_tutorial_runs_quick(script, tmp_path, request):
    run_tutorial(script, "quick", tmp_path, request, timeout=300)


@pytest.mark.parametrize("script", TUTORIALS, ids=[t.stem for t in TUTORIALS])
def test_tutorial_runs_at_class_size(script, tmp_path, request):
    # About a minute each on an idle 2-core laptop; the timeout leaves room for a loaded machine.
    run_tutorial(script, "class", tmp_path, request, timeout=3600)


def test_every_figure_says_what_to_look_for(tmp_path, capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, args = plt.figure(), argparse.Namespace(figures=tmp_path)
    save_figure(fig, args, "line", look_for="the line rises")
    assert capsys.readouterr().out.splitlines() == [f"figure: {tmp_path / 'line.png'}",
                                                     "what to look for: the line rises"]
    with pytest.raises(TypeError, match="look_for"):
        save_figure(fig, args, "line")  # required ...
    with pytest.raises(TypeError):
        save_figure(fig, args, "line", "the line rises")  # ... and named at the call, so it reads as what it is
    plt.close(fig)


@pytest.mark.parametrize("script", TUTORIALS, ids=[t.stem for t in TUTORIALS])
def test_docstring_gives_the_class_size_run_line(script):
    assert re.search(rf"python tutorials/{script.name} --class +# \S", script.read_text()), \
        f"{script.name}: no `python tutorials/{script.name} --class   # time` line in the docstring"


@pytest.mark.parametrize("script", TUTORIALS, ids=[t.stem for t in TUTORIALS])
def test_no_tutorial_names_its_run_folder_by_hand(script):
    """A run folder named by hand ("run", "run_quick") refuses a run with changed settings: run_folder names it."""
    text = script.read_text()
    assert not re.search(r"""["']run(_quick)?["']""", text), f"{script.name} names a run folder by hand"
    assert "overwrite=True" not in text, f"{script.name}: overwrite would replace the recorded run"
    if "run_imp_in_folder(" in text:
        assert "run_folder(args.figures, " in text, f"{script.name} records a run without run_folder"


def test_run_folder_is_named_by_the_settings(tmp_path):
    config = IMPConfig(model="lenet_300_100", rounds=2, train=TrainConfig(iterations=100, eval_every=50))
    data = synthetic_data()
    folder = run_folder(tmp_path, config, data)
    assert folder.parent == tmp_path and re.fullmatch(r"run-[0-9a-f]{8}", folder.name), folder
    assert run_folder(tmp_path, IMPConfig(model="lenet_300_100", rounds=2,
                                          train=TrainConfig(iterations=100, eval_every=50)), synthetic_data()) == folder
    assert run_folder(tmp_path, config, data, "conv2").name == "conv2-" + folder.name.split("-")[1]
    others = [
        run_folder(tmp_path, IMPConfig(model="lenet_300_100", rounds=3, train=config.train), data),  # another setting
        run_folder(tmp_path, IMPConfig(model="lenet_300_100", rounds=2,
                                       train=TrainConfig(iterations=200, eval_every=50)), data),  # ... of training
        run_folder(tmp_path, config, synthetic_data(n_train=120)),  # other data
    ]
    assert len({folder, *others}) == 4, others


def test_sizes_from_flags_and_environment(monkeypatch):
    monkeypatch.delenv(QUICK_ENV, raising=False)
    monkeypatch.delenv(CLASS_ENV, raising=False)
    assert [size_from(False, False), size_from(True, False), size_from(False, True)] == ["full", "quick", "class"]
    monkeypatch.setenv(CLASS_ENV, "1")
    assert size_from(False, False) == "class" and size_from(True, False) == "quick"  # a flag beats the environment
    monkeypatch.setenv(QUICK_ENV, "1")
    with pytest.raises(ValueError, match=f"^{QUICK_ENV}=1 and {CLASS_ENV}=1 ask for two sizes; unset one of them$"):
        size_from(False, False)
    assert size_from(False, True) == "class"
    args = argparse.Namespace(size="class")
    assert by_size(args, 1, 2, 3) == 2


def test_a_script_refuses_two_sizes_in_one_line(tmp_path):
    script = next(t for t in TUTORIALS if t.stem == "01_arrays_and_backend")
    env = {name: value for name, value in os.environ.items() if name not in (QUICK_ENV, CLASS_ENV)}
    env["MPLBACKEND"] = "Agg"
    for flags, extra, message in [
        (["--quick", "--class"], {}, "error: argument --class: not allowed with argument --quick"),
        ([], {QUICK_ENV: "1", CLASS_ENV: "1"}, f"error: {QUICK_ENV}=1 and {CLASS_ENV}=1 ask for two sizes"),
    ]:
        result = subprocess.run([sys.executable, str(script), *flags, "--figures", str(tmp_path)],
                                capture_output=True, text=True, env={**env, **extra}, timeout=300)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and message in result.stderr.splitlines()[-1], result.stderr
