"""The tutorials as Jupyter notebooks: ``tutorials/NN_name.ipynb``, made from ``tutorials/NN_name.py``.

Each tutorial is a percent-format script: its ``# %%`` lines split it into cells, so the same file runs as a
script and reads as a notebook (jupytext converts it). The ``.ipynb`` beside it is generated, never edited:

    python -m minilottery.lab.notebooks           # rewrites tutorials/*.ipynb from tutorials/*.py
    python -m minilottery.lab.notebooks --check   # names the notebooks that are out of date, exit code 1

A notebook holds the script's cells, in order and unchanged, plus cells that only a notebook needs: a title
(the docstring's first line), a setup cell (the line that installs minilottery on Colab, and the line that
asks for quick mode, which a notebook cannot get from ``--quick``: see ``minilottery/lab/tutorial.py``), and a
Markdown heading above each section, taken from its ``heading("...")`` call, so that the notebook's table of
contents lists the sections. Notebooks have no outputs, and their cell ids are numbered in order, so
regenerating an unchanged script writes the same bytes. ``tests/test_notebooks.py`` checks they are up to date.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"  # in a checkout (pip install -e .)

# The notebook's first code cell: comments only, so it changes nothing until a reader removes a "# ".
SETUP = """\
# Notebook setup: run this cell first.
# On Colab, install minilottery: put the address you cloned it from (`git remote get-url origin`) in place of URL
# and remove the "# " before %pip (in a checkout, `pip install -e ".[dev]"` did it).
# %pip install --quiet "minilottery @ git+URL"
# Quick mode (a small data subset and few iterations: seconds): remove the "# " before %env.
# %env MINILOTTERY_QUICK=1
# On a GPU, with CuPy (pip install -e ".[gpu]"; Colab's GPU runtimes have it): remove the "# " before %env.
# %env MINILOTTERY_DEVICE=gpu"""

KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}


def scripts(folder: Path = TUTORIALS) -> list[Path]:
    """The tutorial scripts in ``folder``, in order: ``NN_name.py``."""
    return sorted(Path(folder).glob("[0-9][0-9]_*.py"))


def notebook_for(script: Path):
    """The notebook of ``script`` (an ``nbformat`` notebook), as ``write`` saves it: no outputs, ids in order."""
    import jupytext
    from nbformat.v4 import new_code_cell, new_markdown_cell

    text = Path(script).read_text(encoding="utf-8")
    notebook = jupytext.reads(text, fmt="py:percent")
    title = ast.get_docstring(ast.parse(text)).splitlines()[0]
    cells = [new_markdown_cell(f"# {title}"), new_code_cell(SETUP)]
    for cell in notebook.cells:
        section = heading_of(cell.source) if cell.cell_type == "code" else None
        if section is not None:
            cells.append(new_markdown_cell(f"## {section}"))
        cells.append(cell)
    for number, cell in enumerate(cells):
        cell.id = f"cell-{number:02d}"
    notebook.cells = cells
    notebook.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"}}
    return notebook


def heading_of(source: str) -> str | None:
    """The text of the ``heading("...")`` call a cell starts with, or None."""
    first = source.split("\n", 1)[0]
    if not first.startswith("heading("):
        return None
    call = ast.parse(first).body[0].value  # heading("text"): an expression statement holding a call
    text = call.args[0]
    if not isinstance(text, ast.Constant):  # an f-string's value is only known when the script runs
        raise ValueError(f"{first.strip()}: a section heading must be a plain string (it becomes the notebook's "
                         f"Markdown heading); print the numbers on the next line")
    return text.value


def notebook_text(script: Path) -> str:
    """The ``.ipynb`` file of ``script``, as text (nbformat's JSON, as Jupyter writes it)."""
    import nbformat

    return nbformat.writes(notebook_for(script)) + "\n"


def stale(folder: Path = TUTORIALS) -> list[Path]:
    """The notebooks in ``folder`` that are missing or differ from what their scripts make."""
    out = []
    for script in scripts(folder):
        path = script.with_suffix(".ipynb")
        if not path.exists() or path.read_text(encoding="utf-8") != notebook_text(script):
            out.append(path)
    return out


def write(folder: Path = TUTORIALS) -> list[Path]:
    """Writes the notebooks in ``folder`` that are out of date; returns their paths."""
    written = stale(folder)
    for path in written:
        path.write_text(notebook_text(path.with_suffix(".py")), encoding="utf-8")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minilottery.lab.notebooks",
                                     description="Make tutorials/NN_name.ipynb from tutorials/NN_name.py.")
    parser.add_argument("--check", action="store_true", help="only name the notebooks that are out of date")
    parser.add_argument("--tutorials", type=Path, default=TUTORIALS, help=f"the folder (default: {TUTORIALS})")
    args = parser.parse_args(argv)
    if not scripts(args.tutorials):
        parser.error(f"no tutorial scripts (NN_name.py) in {args.tutorials}; pass --tutorials DIR")
    try:
        import jupytext  # noqa: F401 (only to fail early, in one line)
    except ImportError:
        parser.error('jupytext is not installed; run: pip install -e ".[dev]"')
    if args.check:
        out_of_date = stale(args.tutorials)
        for path in out_of_date:
            print(f"out of date: {path} (run: python -m minilottery.lab.notebooks)")
        return 1 if out_of_date else 0
    for path in write(args.tutorials):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
