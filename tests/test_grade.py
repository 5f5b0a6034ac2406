"""Assignments and their grader: the student's version scores 0 on every item, the reference full marks, and a
realistic bug in any one item fails that item with a message naming the check that caught it."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from minilottery.lab import grading
from minilottery.lab.assignments import (
    BY_NAME,
    ITEM_NAMES,
    ITEMS,
    PACKAGE,
    STUDENT_FILES,
    Submission,
    as_notebook,
    solution_regions,
    strip_solutions,
    write_assignment,
)
from minilottery.lab.cli import main
from minilottery.lab.grading import NOT_IMPLEMENTED, SharedRuns, grade, grade_item, report


@pytest.fixture(scope="module")
def shared():
    """The package's own tiny IMP run, computed once for every test here that grades IMP or its controls."""
    return SharedRuns()


@pytest.fixture(scope="module")
def complete(tmp_path_factory):
    """A student's folder holding unmodified copies of the package's files: everything done right."""
    folder = tmp_path_factory.mktemp("complete")
    for source, name in STUDENT_FILES.items():
        shutil.copyfile(PACKAGE / source, folder / name)
    return folder


def grade_with(folder, names, shared):
    submission = Submission(folder)
    return [grade_item(submission, BY_NAME[name], shared) for name in names]


# -- the markers and the student's files ------------------------------------------------------------------------------


def test_every_item_has_a_region_in_its_file_and_every_region_an_item():
    for source in STUDENT_FILES:
        text = (PACKAGE / source).read_text()
        marked = {item for item, _, _ in solution_regions(text, source)}
        assert marked == {item.name for item in ITEMS if item.source == source}, source


@pytest.mark.parametrize("text, error", [
    ("    ### BEGIN SOLUTION dense_backward\n    x = 1\n", "without an END"),
    ("    x = 1\n    ### END SOLUTION\n", "without a BEGIN"),
    ("    ### BEGIN SOLUTION nothing_like_it\n    ### END SOLUTION\n", "unknown item"),
    ("    ### BEGIN SOLUTION relu_backward\n    ### BEGIN SOLUTION relu_backward\n", "inside"),
    ("    x = 1  ### END SOLUTION\n", "alone on its line"),
])
def test_malformed_markers_are_refused_with_the_line(text, error):
    with pytest.raises(ValueError, match=error):
        solution_regions(text, "f.py")


def test_stripping_keeps_the_indentation_and_the_rest():
    text = ("def f(x):\n    y = 2\n    ### BEGIN SOLUTION relu_backward\n    return x * y\n    ### END SOLUTION\n"
            "\n\ndef g():\n    return 3\n")
    stripped = strip_solutions(text)
    assert stripped.startswith("def f(x):\n    y = 2\n    # YOUR CODE HERE\n    raise NotImplementedError(")
    assert stripped.endswith(")\n\n\ndef g():\n    return 3\n")
    assert "return x * y" not in stripped and "SOLUTION" not in stripped
    namespace = {}
    exec(stripped, namespace)
    with pytest.raises(NotImplementedError, match="relu_backward: dx = dout"):
        namespace["f"](1)
    assert namespace["g"]() == 3


def test_the_written_folder_imports_and_scores_zero_on_every_item(tmp_path, capsys):
    folder = tmp_path / "homework"
    assert main(["assignment", str(folder)]) == 0
    assert f"minilottery grade {folder}" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == sorted([*STUDENT_FILES.values(), "README.md"])
    for name in STUDENT_FILES.values():
        text = (folder / name).read_text()
        assert "SOLUTION" not in text and "YOUR CODE HERE" in text
        assert all(len(line) <= 120 for line in text.splitlines()), name
    readme = (folder / "README.md").read_text()
    assert all(f"`{item.name}` | {item.points} | `{item.student_file}`" in readme for item in ITEMS)
    scores = grade(folder)
    assert [s.item.name for s in scores] == list(ITEM_NAMES)
    assert all(s.earned == 0 and s.message == NOT_IMPLEMENTED for s in scores), report(scores)
    assert not list(folder.glob("__pycache__")), "grading wrote bytecode into the student's folder"


def test_copies_of_the_package_files_score_full_marks(complete, shared):
    scores = grade_with(complete, ITEM_NAMES, shared)  # test_grade_reference: the package's own files
    assert all(s.passed and s.earned == s.item.points for s in scores), report(scores)


# -- planted bugs: each makes its item fail, naming the check -------------------------------------------------------

# (item, student file, text in the reference, the bug, what the failure message says)
BUGS = [
    ("dense_backward", "dense.py", 'self.masked_grad("W", dout.T @ x)', "x.T @ dout",
     "Dense.backward: grads['W'] has shape (5, 4), expected (4, 5)"),
    ("dense_backward", "dense.py", 'self.masked_grad("W", dout.T @ x)', "dout.T @ x",
     "pruned weights: dW is not exactly 0"),
    ("relu_backward", "activation.py", "return dout * self._positive", "return dout.copy()",
     "gradient check: dx disagrees with central differences"),
    ("maxpool_backward", "pooling.py", "argmax == k", "argmax == (k + 1) % (self.kh * self.kw)",
     "gradient check: dx disagrees"),
    ("maxpool_backward", "pooling.py", "dx[:, :, rows, cols] += dout", "dx[:, :, rows, cols] = dout",
     "gradient check: dx disagrees"),
    ("loss_gradient", "loss.py", "    dlogits /= n\n", "",
     "gradient check: dlogits disagrees with central differences"),
    ("loss_gradient", "loss.py", "dlogits = xp.exp(log_probs)",
     "dlogits = xp.exp(logits) / xp.exp(logits).sum(axis=1, keepdims=True)", "large logits:"),
    ("conv_backward", "conv_reference.py",
     "dweight.reshape(self.out_channels, self.kh, self.kw, self.in_channels).transpose(0, 3, 1, 2)",
     "dweight.reshape(self.out_channels, self.in_channels, self.kh, self.kw)",
     "gradient check: dW disagrees with central differences"),
    ("adam_step", "optim_reference.py", "m_hat = m / (1 - beta1**t)\n            v_hat = v / (1 - beta2**t)",
     "m_hat, v_hat = m, v",
     "Adam's update with bias-corrected m_hat and v_hat"),
    ("adam_step", "optim_reference.py", "p[...] = new_p if mask is None else new_p * mask", "p[...] = new_p",
     "step 1: pruned weights are not exactly 0 after the step"),
    ("prune_layer", "prune.py", 'np.argsort(magnitudes, kind="stable")', 'np.argsort(-magnitudes, kind="stable")',
     "prune_layer on a dense layer (rate 0.3): removed a weight with |w|"),
    ("prune_layer", "prune.py", "count = prune_count(rate, int(mask.sum()))", "count = int(rate * mask.sum())",
     "alive weights, expected round("),
    ("random_prune", "prune.py", "size=int(mask.sum())",
     "size=round(mask.size * sum(int(m.sum()) for m in masks.values()) / sum(m.size for m in masks.values()))",
     "kept per layer: "),
    ("random_prune", "prune.py", "keep = rng.choice(", "keep = np.random.default_rng().choice(",
     "seeded: two generators with the same seed gave different masks"),
    ("imp_loop", "imp.py", "rnd, snapshot = train_round(config, data, index, masks, theta0, rewind",
     "start = theta0 if index == 0 else result.rounds[-1].arms['ticket'].final_weights\n"
     "            rnd, snapshot = train_round(config, data, index, masks, start, rewind",
     "round 1: the ticket does not start from θ0 ⊙ m"),
    ("control_reinit", "imp.py",
     "arm_start = build_model(config.model, tuple(data.x_train.shape[1:]),\n"
     "                                    seed=config.seed + REINIT_SEED_OFFSET + index).state_dict()",
     "arm_start = start", "reinit draws a new initialisation: the reinit arm starts from θ0"),
    ("control_random_prune", "imp.py",
     "arm_masks = random_prune(masks, np.random.default_rng([config.seed, RANDOM_PRUNE_STREAM, index]))",
     "arm_masks = masks", "random_prune draws new masks"),
]


@pytest.mark.parametrize("item, name, right, wrong, message", BUGS, ids=[f"{b[0]}-{i}" for i, b in enumerate(BUGS)])
def test_a_planted_bug_fails_its_item_naming_the_check(complete, shared, tmp_path, item, name, right, wrong, message):
    folder = tmp_path / "student"
    shutil.copytree(complete, folder)
    text = (folder / name).read_text()
    assert right in text, f"the reference no longer has {right!r}: update this bug"
    (folder / name).write_text(text.replace(right, wrong))
    names = [i.name for i in ITEMS if i.student_file == name]  # every item of the file: only the planted one fails
    scores = {s.item.name: s for s in grade_with(folder, names, shared)}
    assert scores[item].earned == 0 and message in scores[item].message, scores[item].message
    assert all(s.passed for n, s in scores.items() if n != item), report(list(scores.values()))


def test_an_error_in_the_students_code_names_its_type_message_and_line(complete, shared, tmp_path):
    folder = tmp_path / "student"
    shutil.copytree(complete, folder)
    text = (folder / "dense.py").read_text().replace("dout.sum(axis=0)", "dout.sum(axis=2)")
    (folder / "dense.py").write_text(text)
    line = 1 + text.splitlines().index(next(row for row in text.splitlines() if "dout.sum(axis=2)" in row))
    [score] = grade_with(folder, ["dense_backward"], shared)
    assert score.message.startswith("Dense.backward: AxisError: axis 2 is out of bounds"), score.message
    assert score.message.endswith(f"(dense.py:{line})") and "Traceback" not in score.message


def test_a_file_that_does_not_load_or_is_missing_scores_zero_for_its_items(complete, shared, tmp_path):
    folder = tmp_path / "student"
    shutil.copytree(complete, folder)
    (folder / "prune.py").write_text((folder / "prune.py").read_text().replace("def prune_layer(", "def prune_layer(("))
    (folder / "loss.py").unlink()
    scores = {s.item.name: s for s in grade_with(folder, ["prune_layer", "random_prune", "loss_gradient"], shared)}
    for item in ("prune_layer", "random_prune"):
        assert re.fullmatch(r"prune\.py does not load: SyntaxError: .* \(prune\.py:\d+\)", scores[item].message)
    assert scores["loss_gradient"].message == f"{folder / 'loss.py'} not found"


# -- notebooks --------------------------------------------------------------------------------------------------------


def test_notebooks_are_written_and_graded_like_files(complete, shared, tmp_path):
    folder = tmp_path / "notebooks"
    write_assignment(folder, notebooks=True)
    assert sorted(p.suffix for p in folder.iterdir()) == [".ipynb"] * len(STUDENT_FILES) + [".md"]
    notebook = json.loads((folder / "imp.ipynb").read_text())
    assert notebook["nbformat"] == 4 and notebook["cells"][0]["cell_type"] == "markdown"
    assert len(notebook["cells"]) > 10  # a cell per top-level def or class
    assert all(s.message == NOT_IMPLEMENTED for s in grade(folder, ["dense_backward", "imp_loop"]))
    # the reference as a notebook scores full marks; an error in it names the cell
    text = (complete / "activation.py").read_text()
    (folder / "activation.ipynb").write_text(json.dumps(as_notebook(text)))
    [score] = grade_with(folder, ["relu_backward"], shared)
    assert score.passed, score.message
    broken = as_notebook(text.replace("return dout * self._positive", "return dout * self.positive"))
    (folder / "activation.ipynb").write_text(json.dumps(broken))
    [score] = grade_with(folder, ["relu_backward"], shared)
    assert re.search(r"AttributeError: .*positive.* \(activation\.ipynb cell \d+, line \d+\)$", score.message)
    (folder / "activation.py").write_text(text)
    [score] = grade_with(folder, ["relu_backward"], shared)
    assert "holds both activation.py and activation.ipynb" in score.message


# -- the command line --------------------------------------------------------------------------------------------------


def test_grade_prints_a_line_per_item_and_a_total_and_exits_by_the_result(complete, tmp_path, capsys):
    assert main(["grade", str(complete), "--item", "relu_backward", "--item", "prune_layer"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == ["relu_backward   10/10", "prune_layer     10/10",
                                "total           20/20   (2 of 2 items pass)"]
    folder = tmp_path / "homework"
    write_assignment(folder)
    assert main(["grade", str(folder), "--item", "loss_gradient"]) == 1
    assert capsys.readouterr().out.splitlines()[0] == f"loss_gradient    0/10   {NOT_IMPLEMENTED}"


def test_grade_reference_scores_full_marks(capsys):
    assert main(["grade", "--reference"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(ITEMS) + 1 and lines[-1].split()[1] == "110/110"


@pytest.mark.parametrize("argv, error", [
    (["grade"], "give the student's folder DIR, or --reference"),
    (["grade", "DIR", "--reference"], "give the student's folder DIR, or --reference"),
    (["grade", "{tmp}/missing"], "missing: no such folder; write an assignment there with `minilottery assignment"),
    (["assignment", "{tmp}/full"], "full is not empty; choose a new folder, or pass --overwrite"),
    (["assignment", "{tmp}/full/note.txt"], "note.txt is a file; choose a folder"),
])
def test_usage_errors_are_one_line_and_exit_2(tmp_path, capsys, argv, error):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "note.txt").write_text("mine")
    assert main([arg.format(tmp=tmp_path) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and error in err, err


def test_assignment_overwrite_replaces_the_files_and_keeps_the_rest(tmp_path, capsys):
    folder = tmp_path / "homework"
    write_assignment(folder)
    (folder / "dense.py").write_text("half done")
    (folder / "notes.txt").write_text("mine")
    assert main(["assignment", str(folder), "--overwrite"]) == 0
    assert "YOUR CODE HERE" in (folder / "dense.py").read_text() and (folder / "notes.txt").exists()


def test_every_item_has_a_check():
    assert set(grading.CHECKS) == set(ITEM_NAMES)
