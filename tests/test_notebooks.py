"""The tutorials as notebooks: each .ipynb is what its script makes, and notebooks run in a real Jupyter kernel.

The committed notebooks are regenerated in memory (``minilottery.lab.notebooks``, with jupytext) and compared
cell by cell. Executing starts a ``python3`` kernel (nbclient and ipykernel, from the dev extra) in quick mode,
in a temporary folder, so the figures land in ``tmp_path/figures/<script name>/``.
"""

import nbformat
import pytest
from nbclient import NotebookClient

from minilottery.lab import notebooks
from minilottery.lab.tutorial import QUICK_ENV
from tests.test_tutorials import TUTORIALS, promised_figures

REGENERATE = "python -m minilottery.lab.notebooks"
CELL_TIMEOUT = 120  # seconds per cell; a quick cell takes about one (starting the kernel is not a cell)


def cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


@pytest.mark.parametrize("script", TUTORIALS, ids=[t.stem for t in TUTORIALS])
def test_the_committed_notebook_is_what_the_script_makes(script):
    path = script.with_suffix(".ipynb")
    assert path.exists(), f"{path.name} is missing; run: {REGENERATE}"
    committed = nbformat.read(path, as_version=4)
    assert cells(committed) == cells(notebooks.notebook_for(script)), f"{path.name} is out of date; run: {REGENERATE}"
    for cell in committed.cells:
        assert not cell.get("outputs") and cell.get("execution_count") is None, f"{path.name} holds outputs"
    assert committed.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("script", TUTORIALS, ids=[t.stem for t in TUTORIALS])
def test_the_notebook_holds_the_whole_script_and_a_cell_per_section(script):
    made = notebooks.notebook_for(script)
    code = [cell.source for cell in made.cells if cell.cell_type == "code"][1:]  # after the notebook's setup cell
    lines = [line for line in script.read_text().splitlines() if line.strip() and line != "# %%"]
    assert [line for source in code for line in source.splitlines() if line.strip()] == lines
    sections = [line for line in lines if line.startswith("heading(")]
    assert [source.splitlines()[0] for source in code if source.startswith("heading(")] == sections
    titles = [cell.source for cell in made.cells if cell.cell_type == "markdown" and cell.source.startswith("## ")]
    assert len(titles) == len(sections) > 0
    setup = made.cells[1].source  # comments only: it changes nothing until a reader removes a "# "
    assert all(line.startswith("#") for line in setup.splitlines()) and f"# %env {QUICK_ENV}=1" in setup


def test_the_check_command_names_a_stale_notebook(tmp_path, capsys):
    script = TUTORIALS[1]
    (tmp_path / script.name).write_text(script.read_text())
    assert notebooks.main(["--tutorials", str(tmp_path)]) == 0
    assert notebooks.main(["--tutorials", str(tmp_path), "--check"]) == 0
    (tmp_path / script.name).write_text(script.read_text() + 'print("one more line")\n')
    capsys.readouterr()
    assert notebooks.main(["--tutorials", str(tmp_path), "--check"]) == 1
    assert f"out of date: {tmp_path / script.with_suffix('.ipynb').name}" in capsys.readouterr().out


def run_notebook(script, folder, quick_in_setup_cell=False):
    """Executes the committed notebook of ``script`` in a python3 kernel working in ``folder``; returns it run."""
    notebook = nbformat.read(script.with_suffix(".ipynb"), as_version=4)
    if quick_in_setup_cell:  # the way the notebook itself tells a reader to ask for quick mode
        setup = notebook.cells[1]
        assert f"# %env {QUICK_ENV}=1" in setup.source
        setup.source = setup.source.replace(f"# %env {QUICK_ENV}=1", f"%env {QUICK_ENV}=1")
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}})
    client.execute()  # a cell that raises fails the test, with the cell's traceback
    return notebook


def outputs(notebook, kind):
    return [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs
            if out.output_type == kind]


def check_figures(script, notebook, folder):
    names = promised_figures(script)
    assert names
    for name in names:
        figure = folder / "figures" / script.stem / name
        assert figure.exists() and figure.stat().st_size > 1000, f"the {script.stem} notebook did not write {name}"
    shown = [out for out in outputs(notebook, "display_data") if "image/png" in out.data]
    assert len(shown) == len(names), "each saved figure is shown once below its cell"


def test_tutorial_2_runs_as_a_notebook(tmp_path, monkeypatch):
    monkeypatch.setenv(QUICK_ENV, "1")  # the kernel inherits the environment
    script = next(t for t in TUTORIALS if t.stem == "02_dense_layer_by_hand")
    notebook = run_notebook(script, tmp_path)
    check_figures(script, notebook, tmp_path)
    text = "".join(out.text for out in outputs(notebook, "stream") if out.name == "stdout")
    assert "== 5. a pruning mask" in text


@pytest.mark.mnist
def test_tutorial_5_runs_as_a_quick_notebook(tmp_path, monkeypatch, mnist_data):
    monkeypatch.delenv(QUICK_ENV, raising=False)  # quick mode comes from the notebook's own setup cell
    script = next(t for t in TUTORIALS if t.stem == "05_train_lenet")
    notebook = run_notebook(script, tmp_path, quick_in_setup_cell=True)  # MINILOTTERY_DATA passes through
    check_figures(script, notebook, tmp_path)
    text = "".join(out.text for out in outputs(notebook, "stream") if out.name == "stdout")
    assert "TrainConfig(iterations=300," in text, "quick mode: 300 iterations, not 10,000"
