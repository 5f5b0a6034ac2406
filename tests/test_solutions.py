"""The instructors' solutions (tutorials/solutions/) answer every exercise, and the cheap ones print what they quote.

* Every exercise of every section of ``tutorials/README.md`` (``### N. ... (`NN_name.py`)``, then a numbered list
  after **Exercises**) has an answer heading ``## N.K ...`` in ``tutorials/solutions/NN_name.md``, and no answer
  heading names an exercise that no longer exists: a new exercise without a solution fails here, and so does a
  solution left behind by a deleted or renumbered one.
* Every solution script ``NN_exercise_K.py`` belongs to an existing exercise, compiles, and every name it imports
  exists (checked without running it: most of them train networks for minutes).
* The scripts that take seconds and print numbers that do not depend on timing (``CHECKED``) are run, and their
  output must match the block the ``.md`` quotes after ``$ python tutorials/solutions/<script>.py``. Text must be
  equal; numbers may differ within ``close``'s tolerance, so that another CPU's rounding does not fail the test.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import subprocess_env

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "tutorials" / "README.md"
SOLUTIONS = ROOT / "tutorials" / "solutions"
SCRIPTS = sorted(SOLUTIONS.glob("[0-9][0-9]_exercise_*.py"))

# Scripts that run in seconds and print only deterministic numbers (no timings, no long trainings).
CHECKED = ("01_exercise_1", "01_exercise_3", "02_exercise_1", "02_exercise_3", "04_exercise_1", "04_exercise_2",
           "04_exercise_3", "10_exercise_3")
NEEDS_MNIST = ("10_exercise_3",)

SECTION = re.compile(r"^### (\d+)\. .*\(`(\d\d_\w+)\.py`\)")
EXERCISE = re.compile(r"^(\d+)\. ")
NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


def readme_exercises() -> dict[int, tuple[str, list[int]]]:
    """section number -> (tutorial script name without .py, the numbers of its exercises)."""
    sections: dict[int, tuple[str, list[int]]] = {}
    current, listing = None, False
    for line in README.read_text(encoding="utf-8").splitlines():
        match = SECTION.match(line)
        if match:
            current, listing = int(match.group(1)), False
            sections[current] = (match.group(2), [])
        elif line.startswith("#"):
            current, listing = None, False
        elif current is not None and line.startswith("**Exercises**"):
            listing = True
        elif current is not None and listing and EXERCISE.match(line):
            sections[current][1].append(int(EXERCISE.match(line).group(1)))
    return sections


SECTIONS = readme_exercises()


def answer_headings(path: Path, section: int) -> list[int]:
    """The K of every ``## N.K`` heading of section N in a solution file."""
    heading = re.compile(rf"^## {section}\.(\d+)\b")
    return [int(m.group(1)) for line in path.read_text(encoding="utf-8").splitlines() if (m := heading.match(line))]


def test_the_readme_has_exercises_to_answer():
    assert len(SECTIONS) >= 11 and all(exercises for _, exercises in SECTIONS.values()), SECTIONS


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_exercise_has_an_answer(section):
    script, exercises = SECTIONS[section]
    path = SOLUTIONS / f"{script}.md"
    assert path.is_file(), f"tutorials/README.md section {section} has exercises but {path.name} does not exist"
    answered = answer_headings(path, section)
    missing = [f"{section}.{k}" for k in exercises if k not in answered]
    assert not missing, f"{path.name}: no '## N.K' answer heading for exercise(s) {', '.join(missing)}"
    stale = [f"{section}.{k}" for k in answered if k not in exercises]
    assert not stale, f"{path.name}: answers exercise(s) {', '.join(stale)}, which tutorials/README.md does not have"


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_script_belongs_to_an_exercise_and_its_imports_exist(script):
    section, k = (int(part) for part in re.fullmatch(r"(\d\d)_exercise_(\d+)", script.stem).groups())
    assert section in SECTIONS and k in SECTIONS[section][1], f"{script.name}: no exercise {section}.{k}"
    tree = ast.parse(script.read_text(encoding="utf-8"), filename=str(script))
    compile(tree, str(script), "exec")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                submodule = hasattr(module, "__path__") and importlib.util.find_spec(f"{node.module}.{alias.name}")
                assert hasattr(module, alias.name) or submodule, f"{script.name}: {node.module} has no {alias.name}"


def quoted_output(script: str) -> tuple[list[str], list[str]]:
    """(the arguments, the output lines) of the block ``$ python tutorials/solutions/<script>.py ...`` in the .md."""
    section = int(script[:2])
    lines = (SOLUTIONS / f"{SECTIONS[section][0]}.md").read_text(encoding="utf-8").splitlines()
    prompt = f"$ python tutorials/solutions/{script}.py"
    for i, line in enumerate(lines):
        if line.startswith(prompt):
            end = lines.index("```", i)
            return line[len(prompt):].split(), lines[i + 1:end]
    raise AssertionError(f"{SECTIONS[section][0]}.md quotes no output of {script}.py (a line '{prompt}')")


def close(expected: str, actual: str) -> bool:
    """Two printed numbers agree: both below 1e-6 in size (rounding noise), within 5% when written with an
    exponent (an error like 7.5e-01), within one unit of the last printed digit when written with decimals (a
    percentage), and equal when they are integers (counts, iterations, shapes)."""
    a, b = float(expected.replace(",", "")), float(actual.replace(",", ""))
    if "e" in expected.lower():
        return (abs(a) < 1e-6 and abs(b) < 1e-6) or abs(a - b) <= 0.05 * abs(a)
    if "." not in expected:
        return a == b
    return abs(a - b) <= 10.0 ** -len(expected.split(".")[1]) * 1.0001


def same_output(expected: list[str], actual: list[str]) -> str | None:
    """None when the lines match (text equal up to spacing, numbers ``close``), else the first difference."""
    if len(expected) != len(actual):
        return f"{len(actual)} lines printed, {len(expected)} quoted"
    for quoted, printed in zip(expected, actual):
        quoted, printed = quoted.rstrip(), printed.rstrip()
        if NUMBER.sub("#", quoted).split() != NUMBER.sub("#", printed).split():  # columns may widen
            return f"quoted:  {quoted}\nprinted: {printed}"
        for x, y in zip(NUMBER.findall(quoted), NUMBER.findall(printed)):
            if not close(x, y):
                return f"{x} quoted, {y} printed:\nquoted:  {quoted}\nprinted: {printed}"
    return None


@pytest.mark.parametrize("script", CHECKED)
def test_cheap_script_prints_what_its_answer_quotes(script, request):
    if script in NEEDS_MNIST:
        request.getfixturevalue("mnist_data")  # skips without MNIST, but fails when CI is set
    arguments, expected = quoted_output(script)
    result = subprocess.run([sys.executable, str(SOLUTIONS / f"{script}.py"), *arguments], capture_output=True,
                            text=True, env=subprocess_env(MPLBACKEND="Agg"), timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    difference = same_output(expected, result.stdout.splitlines())
    assert difference is None, f"{script}.py no longer prints what its answer quotes:\n{difference}"


def test_the_number_comparison_tells_rounding_from_a_change():
    assert close("4.5e-08", "9.9e-08") and close("7.5e-01", "7.4e-01") and not close("7.5e-01", "5.0e-01")
    assert close("86.50", "86.50") and close("86.50", "86.51") and not close("86.50", "86.70")
    assert close("53,140", "53,140") and not close("53,140", "53,141") and close("0.00", "0.00")
    assert same_output(["x 1.0e-10 y"], ["x 3.0e-11 y"]) is None
    assert same_output(["shape (6, 6)"], ["shape (6, 7)"]) is not None
    assert same_output(["True"], ["False"]) is not None
