"""Every exercise in tutorials/README.md that names code names code that exists.

The instructors' exercises and the course schedule cite functions, classes, attributes, keyword arguments,
files and command-line flags in backticks. Code changes; an exercise that asks for ``layer._cache``'s ``cols``
after the cache changed, or hints at a function that was renamed, sends a class on a hunt for nothing. This
test reads every backticked span in those parts of the README and checks it:

* dotted names resolve by import: ``minilottery.X``, ``minilottery.<subpackage>.X``, or an attribute of a
  minilottery module (``Scorer`` is ``minilottery.lab.prune_at_init.Scorer``), then attribute by attribute;
  ``np.`` and ``scipy.`` resolve in those libraries;
* a name that only a tutorial defines (``result``, ``textbook_adam_step``), and attributes of such names, must
  be defined somewhere in the package or the tutorial scripts (a def, a class, an assignment, a parameter, a
  ``self.`` attribute, or an identifier-like string constant such as a criterion name);
* keyword arguments must be accepted by the function they are passed to;
* file names exist in the repository (or are written by the package: a string constant in its source);
* flags exist in the tutorials' or the named command's ``--help``; parameter names (``6.W``) exist in a model.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest

import minilottery

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "tutorials" / "README.md"
SCRIPTS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
PACKAGE_FILES = sorted((ROOT / "minilottery").rglob("*.py"))

# Not code, each on purpose. Everything else in backticks must resolve.
ALLOWED = {
    "log_softmax(z)",  # exercise 1.1 asks the students to write this function: it does not exist yet
}
LIBRARIES = {"np": "numpy", "numpy": "numpy", "scipy": "scipy"}  # the third-party roots exercises may cite
PARAMETER = re.compile(r"\d+\.[Wb]")  # a model's parameter name, e.g. 6.W (a layer index and W or b)
FILE = re.compile(r"[\w./-]+\.(py|md|ipynb|npz|json|csv|png|toml)")  # a file name or a path
# Folders the tutorials create as they run (git ignores them, so a fresh clone lacks them): where
# minilottery/lab/tutorial.py puts each script's figures and runs.
OUTPUT_FOLDERS = {"tutorials/figures/"}
FOLDER = re.compile(r"[\w.-]+(/[\w.-]+)*/")  # a folder of the repository, e.g. tutorials/solutions/
PLACEHOLDER_PATH = re.compile(r"[\w./-]+/<[^>]+>.*")  # tutorials/figures/<script name>/run/: a folder pattern


def cited_text(readme: str) -> str:
    """The README's exercise lists (after each **Exercises** line, up to the next heading) and its schedule."""
    parts, keep = [], False
    for line in readme.splitlines():
        if line.startswith("#"):
            keep = line.startswith("## Suggested 3-week schedule")
        elif line.strip() == "**Exercises**":
            keep = True
        if keep:
            parts.append(line)
    return "\n".join(parts)


def spans(text: str) -> list[str]:
    """Every backticked span, with a span broken over two lines joined by one space."""
    return [re.sub(r"\s*\n\s*", " ", s).strip() for s in re.findall(r"`([^`]+)`", text)]


@cache
def modules() -> dict[str, object]:
    """Every module of the package, imported, by dotted name."""
    found = {"minilottery": minilottery}
    for info in pkgutil.walk_packages(minilottery.__path__, "minilottery."):
        if not info.name.endswith(".__main__"):  # importing it runs the command line
            found[info.name] = importlib.import_module(info.name)
    return found


@cache
def defined_names() -> frozenset[str]:
    """Names the package and the tutorials define: defs, classes, assignments, parameters, self.X, string ids."""
    names = set(dir(builtins)) | set(dir(np)) | set(dir(np.ndarray))  # xp is numpy's namespace; arrays' methods
    for path in PACKAGE_FILES + SCRIPTS:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
                names.add(node.value)  # a registered name: a criterion, an arm, a figure
    return frozenset(names)


@cache
def tutorial_names() -> frozenset[str]:
    """The names the tutorial scripts assign at their top level (``data``, ``result``, ``config``, ...)."""
    names = set()
    for path in SCRIPTS:
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            for target in node.targets if isinstance(node, ast.Assign) else []:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return frozenset(names)


@cache
def package_source() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in PACKAGE_FILES)


@cache
def help_text(command: str | None) -> str:
    """``--help`` of a tutorial (command None) or of ``minilottery <command>``."""
    args = [str(SCRIPTS[0])] if command is None else ["-m", "minilottery", command]
    done = subprocess.run([sys.executable, *args, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def chain(node: ast.expr) -> list[str] | None:
    """``a.b.c`` -> ["a", "b", "c"]; None when the root is not a plain name (a call, a subscript, ...)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def roots(name: str) -> list[object]:
    """What a name can mean: a library, a minilottery module (any subpackage), or a module attribute."""
    found = [importlib.import_module(LIBRARIES[name])] if name in LIBRARIES else []
    found += [m for dotted, m in modules().items() if dotted == name or dotted.endswith("." + name)]
    found += [getattr(m, name) for m in modules().values() if hasattr(m, name)]
    return found


def has(obj: object, attr: str) -> bool:
    """An attribute, a dataclass field, or an attribute a class's methods assign (``self.attr = ...``)."""
    if hasattr(obj, attr):
        return True
    if inspect.isclass(obj):
        for cls in obj.__mro__:
            if attr in getattr(cls, "__annotations__", {}):
                return True
            try:
                source = inspect.getsource(cls)
            except (OSError, TypeError):
                continue
            if re.search(rf"\bself\.{re.escape(attr)}\b", source):
                return True
    return False


def resolve(parts: list[str]) -> list[object] | None:
    """The objects ``parts`` resolves to by import and getattr (None: no strict resolution at all)."""
    candidates = roots(parts[0])
    if not candidates:
        return None
    for attr in parts[1:]:
        candidates = [getattr(c, attr, c) for c in candidates if has(c, attr)]  # a field without a default: c
    return candidates


def problems_in_expression(tree: ast.AST) -> list[str]:
    """Why the names in a parsed span do not resolve (empty when they all do)."""
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            parts = chain(node.func)
            objects = resolve(parts) if parts else None
            callables = [o for o in objects or [] if callable(o)]
            for keyword in node.keywords:
                if keyword.arg is None or not callables:
                    continue
                if not any(accepts(o, keyword.arg) for o in callables):
                    problems.append(f"{'.'.join(parts)} takes no keyword {keyword.arg!r}")
        if isinstance(node, (ast.Attribute, ast.Name)) and not isinstance(getattr(node, "value", None), ast.Attribute):
            parts = chain(node)
            if parts is None:  # an attribute of a call or subscript: check the attribute name alone
                if node.attr not in defined_names():
                    problems.append(f"no code defines {node.attr!r}")
                continue
            objects = resolve(parts)
            if not objects and parts[0] in tutorial_names():  # `data` is a tutorial's Dataset, not minilottery.data
                objects = None
            if objects is None:  # a tutorial's own variable: its name and attributes must be defined somewhere
                missing = [p for p in parts if p not in defined_names()]
                problems += [f"no code defines {p!r}" for p in missing]
            elif not objects:
                problems.append(f"{'.'.join(parts)} does not resolve")
    return problems


def accepts(function: object, keyword: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return True  # a builtin without a signature: nothing to check
    return keyword in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def problems_in(span: str) -> list[str]:
    """Why ``span`` is not true to the code (empty when it is)."""
    if span in ALLOWED:
        return []
    if span.startswith("--"):  # a tutorial flag, with or without its value
        flag = span.split()[0]
        return [] if re.search(rf"{re.escape(flag)}\b", help_text(None)) else [f"no tutorial takes {flag}"]
    if span.startswith("minilottery "):  # a shell command: the command and each of its flags
        from minilottery.lab.cli import COMMANDS

        words = span.split()
        if words[1] not in COMMANDS:
            return [f"no command {words[1]!r}"]
        text = help_text(words[1])
        return [f"minilottery {words[1]} takes no {w}" for w in words if w.startswith("--") and w not in text]
    if PARAMETER.fullmatch(span):
        from minilottery.models import build_model

        names = {n for model in ("lenet_300_100", "conv2") for n in build_model(model, seed=0).parameters()}
        return [] if span in names else [f"no model has a parameter {span}"]
    if PLACEHOLDER_PATH.fullmatch(span):
        folder = span.split("<")[0]
        return [] if (ROOT / folder).is_dir() or folder in OUTPUT_FOLDERS else [f"no folder {folder}"]
    if FOLDER.fullmatch(span):
        return [] if (ROOT / span).is_dir() or span in OUTPUT_FOLDERS else [f"no folder {span}"]
    if FILE.fullmatch(span):
        exists = (ROOT / span).exists() or any(p.name == span for p in ROOT.rglob(span) if ".venv" not in p.parts)
        return [] if exists or f'"{span}"' in package_source() else [f"no file {span}"]
    try:
        tree = ast.parse(span, mode="eval")
    except SyntaxError:
        try:
            # keyword-style settings such as lr=5e-3 parse as assignments; a block opener as a one-line block
            tree = ast.parse(span + " pass" if span.endswith(":") else span)
        except SyntaxError:
            return [f"not code, and not in ALLOWED: {span!r}"]
    return problems_in_expression(tree)


def unresolved(cited: list[str]) -> dict[str, list[str]]:
    return {span: problems for span in cited if (problems := problems_in(span))}


def test_the_readme_has_exercises_and_a_schedule():
    text = cited_text(README.read_text(encoding="utf-8"))
    assert text.count("**Exercises**") == 13
    assert "## Suggested 3-week schedule" in text
    assert len(spans(text)) > 50


def test_every_exercise_names_code_that_exists():
    bad = unresolved(spans(cited_text(README.read_text(encoding="utf-8"))))
    assert not bad, "tutorials/README.md cites code that does not exist:\n" + "\n".join(
        f"  `{span}`: {'; '.join(problems)}" for span, problems in bad.items())


@pytest.mark.parametrize("span", [
    "prune.no_such_function",  # a module's missing attribute
    "NoSuchClass",  # a name nothing defines
    "Scorer(..., no_such_keyword=1)",  # a keyword the function does not take
    "result.rounds[r].arms['ticket'].no_such_field",  # an attribute of a tutorial's variable
    "no_such_file.py",
    "--no-such-flag",
    "minilottery no-such-command",
    "9.W",
    "sentences are not code",
])
def test_a_wrong_reference_is_caught(span):
    assert problems_in(span)
