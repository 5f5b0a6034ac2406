"""Assignments: the pieces of minilottery a student writes, as files with the solutions taken out.

The reference implementations mark their lessons with nbgrader's convention, comment lines inside a function::

    ### BEGIN SOLUTION dense_backward
    self.grads["W"] = self.masked_grad("W", dout.T @ x)  # (out, N) @ (N, in) -> (out, in)
    ...
    ### END SOLUTION

``write_assignment(folder)`` (``minilottery assignment DIR``) copies each marked file into ``folder`` with every
region replaced by ``# YOUR CODE HERE`` and a ``raise NotImplementedError`` naming the item, plus a README that
lists the items. ``Submission`` loads a student's files back (``.py``, or a notebook's code cells) as modules of
their own; ``minilottery.lab.grading`` runs each item's checks on them.

A student's file imports the rest of minilottery from the installed package (``dense.py`` imports
``minilottery.layers.base``), so only the student's own functions and classes are graded.
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
import json
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import minilottery
from minilottery.files import atomic_write_json, atomic_write_text

PACKAGE = Path(minilottery.__file__).resolve().parent

# -- the items ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One thing a student writes: a marked region (or several) of one package file.

    Attributes:
        name: the name its markers carry (``### BEGIN SOLUTION <name>``).
        source: the package file, relative to the package (``"layers/dense.py"``).
        where: the function(s) it sits in, as the student reads them.
        task: one line saying what to write (the ``NotImplementedError``'s message and the README's).
        points: what it is worth.
    """

    name: str
    source: str
    where: str
    task: str
    points: int = 10

    @property
    def student_file(self) -> str:
        """The file's name in the student's folder."""
        return STUDENT_FILES[self.source]


# package file -> the student's copy (a flat folder: one name per file; optim/reference.py needs its folder's name)
STUDENT_FILES = {
    "layers/dense.py": "dense.py",
    "layers/activation.py": "activation.py",
    "layers/pooling.py": "pooling.py",
    "loss.py": "loss.py",
    "layers/conv_reference.py": "conv_reference.py",
    "optim/reference.py": "optim_reference.py",
    "prune.py": "prune.py",
    "imp.py": "imp.py",
}

ITEMS = (
    Item("dense_backward", "layers/dense.py", "Dense.backward",
         "dW = dout.T @ x (times the mask), db = dout summed over the batch, dx = dout @ W "
         "(return None when input_grad is False)"),
    Item("relu_backward", "layers/activation.py", "ReLU.backward",
         "dx = dout where the input was positive, 0 elsewhere (a new array: never write into dout)"),
    Item("maxpool_backward", "layers/pooling.py", "MaxPool2d.backward",
         "send dout to the input each window took its maximum from (argmax == k); overlapping windows add up"),
    Item("loss_gradient", "loss.py", "softmax_cross_entropy",
         "dlogits = (softmax(logits) - onehot(labels)) / N, from log_probs (no overflow), in the logits' dtype"),
    Item("conv_backward", "layers/conv_reference.py", "ReferenceConv2d.backward",
         "db = dout_rows summed per filter; dW = dout_rows.T @ cols back in (F, C, KH, KW), times the mask; "
         "dx = col2im(dout_rows @ weight_rows, ...) (None when input_grad is False)"),
    Item("adam_step", "optim/reference.py", "ReferenceAdam.step",
         "m and v (kept in state), their bias corrections m_hat and v_hat, then "
         "p[...] = (p - lr * m_hat / (sqrt(v_hat) + eps)) * mask"),
    Item("prune_layer", "prune.py", "_smallest_alive and prune_layer",
         "_smallest_alive returns the flat indices of the count alive weights of smallest |w| (a stable sort: of "
         "equal |w| the earlier index first); prune_layer clears round(rate * alive) of them in a copy of the mask"),
    Item("random_prune", "prune.py", "random_prune",
         "a mask per layer keeping as many weights as the given one, at positions rng draws uniformly"),
    Item("imp_loop", "imp.py", "run_imp",
         "masks: every weight kept in round 0 (full_masks), later the previous round's ticket pruned (next_masks); "
         "then rnd, snapshot = train_round(...) from θ0"),
    Item("control_reinit", "imp.py", "train_round",
         "the ticket's masks, and a fresh θ0' from build_model(..., seed=config.seed + REINIT_SEED_OFFSET + index)"),
    Item("control_random_prune", "imp.py", "train_round",
         "the ticket's start, and random_prune(masks, ...) with np.random.default_rng([config.seed, "
         "RANDOM_PRUNE_STREAM, index])"),
)
ITEM_NAMES = tuple(item.name for item in ITEMS)
BY_NAME = {item.name: item for item in ITEMS}

# -- solution regions ---------------------------------------------------------------------------------------------

BEGIN = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION[ \t]+(?P<item>\w+)[ \t]*$")
END = re.compile(r"^[ \t]*### END SOLUTION[ \t]*$")
YOUR_CODE = "# YOUR CODE HERE"


def solution_regions(source: str, where: str = "<source>") -> list[tuple[str, int, int]]:
    """The marked regions of ``source``: ``(item, begin_line, end_line)``, 0-based lines of the two markers.

    Raises:
        ValueError: a marker without its partner, nested regions, or an item name that is not in ``ITEMS``.
    """
    regions, open_at, item = [], None, None
    for number, line in enumerate(source.splitlines()):
        begin = BEGIN.match(line)
        if begin is not None:
            if open_at is not None:
                raise ValueError(f"{where}:{number + 1}: a region begins inside the one begun at line {open_at + 1}")
            item, open_at = begin["item"], number
            if item not in BY_NAME:
                raise ValueError(f"{where}:{number + 1}: unknown item {item!r}; the items are {', '.join(ITEM_NAMES)}")
        elif END.match(line):
            if open_at is None:
                raise ValueError(f"{where}:{number + 1}: END SOLUTION without a BEGIN SOLUTION")
            regions.append((item, open_at, number))
            open_at = None
        elif "### BEGIN SOLUTION" in line or "### END SOLUTION" in line:
            raise ValueError(f"{where}:{number + 1}: a marker must be alone on its line: {line.strip()!r}")
    if open_at is not None:
        raise ValueError(f"{where}:{open_at + 1}: BEGIN SOLUTION without an END SOLUTION")
    return regions


def strip_solutions(source: str, where: str = "<source>") -> str:
    """``source`` with every marked region replaced by ``# YOUR CODE HERE`` and ``raise NotImplementedError``
    (at the region's indentation, so the file still imports)."""
    lines = source.splitlines(keepends=True)
    out, last = [], 0
    for item, begin, end in solution_regions(source, where):
        indent = BEGIN.match(lines[begin])["indent"]
        out += lines[last:begin]
        out += [f"{indent}{YOUR_CODE}\n", *_raise_lines(indent, f"{item}: {BY_NAME[item].task}")]
        last = end + 1
    return "".join(out + lines[last:])


def _raise_lines(indent: str, message: str, width: int = 116) -> list[str]:
    """``raise NotImplementedError("message")`` at ``indent``, the message cut into string literals that keep
    each line within ``width`` characters (Python joins adjacent literals)."""
    opening = f"{indent}raise NotImplementedError("
    room = max(40, width - len(opening) - 3)
    chunks, current = [], ""
    for word in message.split(" "):
        if current and len(current) + len(word) + 1 > room:
            chunks.append(current + " ")
            current = word
        else:
            current = f"{current} {word}" if current else word
    chunks.append(current)
    literals = [json.dumps(chunk, ensure_ascii=False) for chunk in chunks]  # a double-quoted Python literal
    pad = " " * len(opening)
    return [f"{opening if i == 0 else pad}{literal}{')' if i == len(literals) - 1 else ''}\n"
            for i, literal in enumerate(literals)]


# -- the student's folder ------------------------------------------------------------------------------------------


def student_sources() -> dict[str, str]:
    """Student file name -> its text: the package's file with the solutions stripped and a header."""
    sources = {}
    for source, name in STUDENT_FILES.items():
        text = (PACKAGE / source).read_text(encoding="utf-8")
        names = ", ".join(item.name for item in ITEMS if item.source == source)
        header = (f"# An assignment written by `minilottery assignment` (items: {names}).\n"
                  f"# Replace each `{YOUR_CODE}` and the `raise NotImplementedError` below it with your code, then\n"
                  f"# run `minilottery grade FOLDER` on this file's folder. The file imports the rest of minilottery\n"
                  f"# from the installed package, as it is.\n")
        sources[name] = header + strip_solutions(text, f"minilottery/{source}")
    return sources


def write_assignment(folder: str | Path, notebooks: bool = False, overwrite: bool = False) -> list[Path]:
    """Writes the student's folder: one file per marked package file (``.py``, or ``.ipynb`` with ``notebooks``)
    and README.md. Returns the paths written.

    Raises:
        ValueError: ``folder`` is a file, or a folder that is not empty (unless ``overwrite``).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; choose a folder for the assignment")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise ValueError(f"{folder} is not empty; choose a new folder, or pass --overwrite to replace its "
                         f"assignment files")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in student_sources().items():
        py, notebook = folder / name, (folder / name).with_suffix(".ipynb")
        other = py if notebooks else notebook
        if other.exists():  # the other format, from an earlier assignment: the grader would not know which to read
            other.unlink()
        if notebooks:
            written.append(atomic_write_json(notebook, as_notebook(text)))
        else:
            written.append(atomic_write_text(py, text))
    written.append(atomic_write_text(folder / "README.md", student_readme(notebooks)))
    return written


def as_notebook(source: str) -> dict[str, Any]:
    """An nbformat-4 notebook of ``source``: a Markdown cell saying what to do, then one code cell per top-level
    function or class (and one for what comes before the first): joined in order, the code cells are ``source``
    (``read_student_file`` joins them so)."""
    lines = source.splitlines(keepends=True)
    starts = [0]
    for node in _top_level_nodes(source):
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        while start > 0 and lines[start - 1].startswith("#"):  # a comment above a def belongs to it
            start -= 1
        if start > starts[-1]:
            starts.append(start)
    bounds = zip(starts, starts[1:] + [len(lines)])
    cells = [_cell("markdown", "Write the code where a cell says `# YOUR CODE HERE`, then run "
                               "`minilottery grade FOLDER` on this notebook's folder (save the notebook first).")]
    cells += [_cell("code", "".join(lines[a:b]).rstrip("\n")) for a, b in bounds]
    for index, cell in enumerate(cells):
        cell["id"] = f"cell-{index}"
    return {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                         "name": "python3"},
                                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def _top_level_nodes(source: str) -> list[ast.stmt]:
    """The top-level ``def`` and ``class`` statements of ``source``."""
    return [node for node in ast.parse(source).body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def _cell(kind: str, text: str) -> dict[str, Any]:
    cell = {"cell_type": kind, "metadata": {}, "source": text.splitlines(keepends=True)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def student_readme(notebooks: bool = False) -> str:
    """README.md of the student's folder: the items, their points, where each is, what to write, how to grade."""
    suffix = ".ipynb" if notebooks else ".py"
    escaped = {item.name: item.task.replace("|", "\\|") for item in ITEMS}  # a | inside a Markdown table cell
    rows = "\n".join(f"| `{item.name}` | {item.points} | `{Path(item.student_file).with_suffix(suffix)}` | "
                     f"`{item.where}` | {escaped[item.name]} |" for item in ITEMS)
    total = sum(item.points for item in ITEMS)
    return f"""# minilottery assignments

Each file here is a piece of minilottery with its lessons cut out. Where a file says `{YOUR_CODE}`, replace that
line and the `raise NotImplementedError(...)` below it with your code. Then grade the folder:

    minilottery grade .                          # every item
    minilottery grade . --item dense_backward    # one item (repeat --item for more)

| item | points | file | where | what to write |
|---|---|---|---|---|
{rows}

Total: {total} points.

## How it is graded

`minilottery grade` loads your files (a `.py`, or a `.ipynb` with the same name: its code cells joined in order)
and runs each item's checks, all without PyTorch: gradient checks against central differences in float64,
comparisons with minilottery's own implementation on the same inputs (to about 1e-9, or bit for bit for IMP and its
controls, which use fixed seeds), and the invariants of pruning (exact counts, nested masks, pruned weights and
their gradients exactly 0). An item scores its points when all of its checks pass and 0 otherwise; the grader
prints the first check that fails. It exits with 0 when every item passes.

Your files import the rest of minilottery from the installed package (e.g. `dense.py` imports
`minilottery.layers.base`), so only your own code is graded; keep the file names as they are. The grader runs
the whole file (every code cell of a notebook): keep what you add to try your code out short.
"""


# -- loading a student's file --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudentFile:
    """A student's file as the grader runs it: its path, its Python text, and for a notebook where each code cell
    starts in that text (0-based lines), so that an error can name the cell."""

    path: Path
    text: str
    cell_starts: tuple[int, ...] = ()

    def place(self, line: int) -> str:
        """``dense.py:12``, or ``dense.ipynb cell 3, line 4`` (cells counted from 1, code cells only)."""
        if not self.cell_starts:
            return f"{self.path.name}:{line}"
        cell = max((i for i, start in enumerate(self.cell_starts) if start < line), default=0)
        return f"{self.path.name} cell {cell + 1}, line {line - self.cell_starts[cell]}"


def read_student_file(path: Path) -> StudentFile:
    """The Python text of a ``.py`` file, or of a notebook's code cells joined in order (IPython's ``%magic`` and
    ``!shell`` lines become comments)."""
    if path.suffix != ".ipynb":
        return StudentFile(path, path.read_text(encoding="utf-8"))
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        cells = [cell["source"] for cell in notebook["cells"] if cell.get("cell_type") == "code"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path.name} is not a notebook Jupyter wrote ({type(exc).__name__}: {exc})") from None
    parts, starts, line = [], [], 0
    for cell in cells:
        text = "".join(cell) if isinstance(cell, list) else str(cell)
        text = "\n".join(f"# {row}" if row.lstrip().startswith(("%", "!")) else row for row in text.splitlines())
        starts.append(line)
        parts.append(text + "\n")
        line += text.count("\n") + 2  # the cell's lines, and the blank line between cells
    return StudentFile(path, "\n".join(parts), tuple(starts))


_module_numbers = itertools.count()


def load_student_module(student: StudentFile) -> ModuleType:
    """Runs the student's file as a fresh module (its own name, so it never replaces the package's modules).

    The text is compiled under the file's own path, so a traceback points into the student's file; no bytecode
    is written next to it and ``sys.path`` is left as it is. The module is in ``sys.modules`` only while it runs
    (dataclasses look their module up there).
    """
    name = f"minilottery_student_{next(_module_numbers)}_{student.path.stem}"
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(student.path))
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(student.path)
    code = compile(student.text, str(student.path), "exec", dont_inherit=True)
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    finally:
        del sys.modules[name]
    return module


class Submission:
    """A student's folder (or, with ``folder=None``, the package's own files), its files loaded once each."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.files: dict[str, StudentFile] = {}  # str(path) -> file, to name the student's lines in errors
        self._modules: dict[str, ModuleType | str] = {}

    def path_of(self, item: Item) -> Path:
        """Where the student's file of ``item`` is; raises ``CheckFailed`` when it is missing (or doubled)."""
        if self.folder is None:
            return PACKAGE / item.source
        py = self.folder / item.student_file
        notebook = py.with_suffix(".ipynb")
        if py.exists() and notebook.exists():
            raise CheckFailed(f"{self.folder}/ holds both {py.name} and {notebook.name}: delete the one you are not "
                              f"working on")
        if notebook.exists():
            return notebook
        if not py.exists():
            raise CheckFailed(f"{self.folder / item.student_file} not found")
        return py

    def module(self, item: Item) -> ModuleType:
        """The loaded module of ``item``'s file; raises ``CheckFailed`` when it cannot be loaded."""
        path = self.path_of(item)
        key = str(path)
        if key not in self._modules:
            try:
                student = read_student_file(path)
                self.files[key] = student
                self._modules[key] = load_student_module(student)
            except SyntaxError as exc:
                self._modules[key] = (f"{path.name} does not load: SyntaxError: {exc.msg} "
                                      f"({self.files[key].place(exc.lineno or 0)})")
            except (Exception, SystemExit) as exc:  # any error in a student's file is reported, not raised
                self._modules[key] = f"{path.name} does not load: {self.describe(exc)}"
        loaded = self._modules[key]
        if isinstance(loaded, str):
            raise CheckFailed(loaded)
        return loaded

    def describe(self, exc: BaseException) -> str:
        """``Type: message (file:line)``, the line being the deepest one of the student's files in the traceback."""
        from minilottery.lab.cli import one_line

        place = None
        for frame in traceback.extract_tb(exc.__traceback__):
            student = self.files.get(frame.filename)
            if student is not None:
                place = student.place(frame.lineno or 0)
        where = f" ({place})" if place else ""
        return f"{type(exc).__name__}: {one_line(exc)}{where}"


class CheckFailed(Exception):
    """A check did not pass; the message is ``<check>: <what is wrong>``, one line."""


__all__ = ["ITEMS", "ITEM_NAMES", "CheckFailed", "Item", "Submission", "solution_regions", "strip_solutions",
           "student_sources", "write_assignment"]
