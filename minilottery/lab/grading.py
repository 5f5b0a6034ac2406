"""Grading: the checks each assignment item must pass, and the score (``minilottery grade DIR``).

``grade(folder)`` loads the student's files (``minilottery.lab.assignments.Submission``) and runs each item's
checks: gradient checks against central differences (float64), comparisons with the package's own code on the
same inputs, and the invariants of pruning (exact counts, nested masks, pruned weights exactly 0); IMP and its
controls run a tiny two-round experiment compared bit for bit with the package's. No PyTorch.

An item is worth its points when every one of its checks passes and 0 otherwise; the first failing check is what
the grader reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from minilottery import imp, prune
from minilottery.data import Dataset
from minilottery.gradcheck import away_from_zero, check_layer, numerical_vjp, rel_error
from minilottery.lab.assignments import (
    BY_NAME,
    ITEM_NAMES,
    ITEMS,
    CheckFailed,
    Item,
    Submission,
)
from minilottery.layers import Dense, MaxPool2d, ReferenceConv2d, ReLU
from minilottery.loss import softmax_cross_entropy
from minilottery.models import build_model
from minilottery.optim import ReferenceAdam
from minilottery.training import TrainConfig

# -- checks ----------------------------------------------------------------------------------------------------------


class CheckError(Exception):
    """The student's code raised ``error`` during the check called ``check``."""

    def __init__(self, check: str, error: BaseException) -> None:
        super().__init__(check)
        self.check, self.error = check, error


def fail(check: str, detail: str) -> None:
    raise CheckFailed(f"{check}: {detail}")


@contextlib.contextmanager
def running(check: str) -> Iterator[None]:
    """Runs student code inside ``check``: an exception there (but NotImplementedError) becomes a CheckError."""
    try:
        yield
    except (CheckFailed, NotImplementedError):
        raise
    except Exception as exc:  # whatever the student's code raises is reported with its line
        raise CheckError(check, exc) from exc


def expect_array(check: str, what: str, value: Any, shape: tuple[int, ...], dtype: Any = None) -> None:
    if not isinstance(value, np.ndarray):
        fail(check, f"{what} is {type(value).__name__}, expected an array of shape {shape}")
    if value.shape != tuple(shape):
        fail(check, f"{what} has shape {value.shape}, expected {tuple(shape)}")
    if dtype is not None and value.dtype != dtype:
        fail(check, f"{what} has dtype {value.dtype}, expected {np.dtype(dtype)}")


def expect_close(check: str, what: str, got: Any, expected: Any, exact: bool = False) -> None:
    """``got`` equals ``expected`` (bit for bit when ``exact``, else to rtol 1e-9); the message shows the worst
    element."""
    expected = np.asarray(expected)
    expect_array(check, what, got, expected.shape)
    same = np.array_equal(got, expected) if exact else np.allclose(got, expected, rtol=1e-9, atol=1e-12)
    if not same:
        diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        worst = np.unravel_index(int(np.argmax(np.where(np.isnan(diff), np.inf, diff))), got.shape)
        fail(check, f"{what} differs at index {tuple(int(i) for i in worst)}: {got[worst]:.10g} instead of "
                    f"{expected[worst]:.10g}")


GRADIENT_TOLERANCE = 1e-6  # rel_error of a right backward in float64 is about 1e-9; a wrong one is about 1


def check_backward(label: str, student: Any, reference: Any, x: np.ndarray, *, gradients: bool = True,
                   input_grad: bool = False) -> None:
    """The student's layer against central differences and against the package's ``reference`` layer (same
    parameters and masks): dx and every parameter gradient; pruned weights' gradients exactly 0; ``dout``
    untouched; and, with ``input_grad``, ``backward(dout, input_grad=False)`` returning None."""
    with running(f"{label} forward"):
        out = student.forward(x.copy())
    dout = np.random.default_rng(1).standard_normal(out.shape)  # (out's shape), float64
    given = dout.copy()
    with running(label):
        dx = student.backward(given)
    if not np.array_equal(given, dout):
        fail(label, "it wrote into dout: compute new arrays and leave the caller's dout as it was")
    expect_array(label, "dx", dx, x.shape, np.float64)
    for name, param in student.params.items():
        expect_array(label, f"grads[{name!r}]", student.grads.get(name), param.shape, np.float64)
    for name, mask in student.masks.items():
        if np.any(student.grads[name][mask == 0] != 0):
            fail("pruned weights", f"d{name} is not exactly 0 at pruned weights: multiply the gradient by the mask")
    if gradients:
        with running("gradient check"):
            errors = check_layer(student, x)
        for key, error in errors.items():
            if not error <= GRADIENT_TOLERANCE:
                fail("gradient check", f"d{key} disagrees with central differences: relative error {error:.2g} "
                                       f"(a right backward gives about 1e-9)")
    reference.forward(x.copy())
    expected_dx = reference.backward(dout.copy())
    same = f"same as minilottery's {type(reference).__name__}"
    expect_close(same, "dx", dx, expected_dx)
    for name, grad in reference.grads.items():
        expect_close(same, f"d{name}", student.grads[name], grad)
    if input_grad:
        check = f"{label}(dout, input_grad=False)"
        with running(check):
            student.forward(x.copy())
            result = student.backward(dout.copy(), input_grad=False)
        if result is not None:
            fail(check, "returned dx; expected None (the first layer needs no input gradient)")
        for name, grad in reference.grads.items():
            expect_close(check, f"d{name}", student.grads.get(name), grad)


def with_parameters_of(reference: Any, student: Any) -> Any:
    """``reference`` with copies of the student's parameters and masks (so both compute the same function)."""
    reference.params = {name: value.copy() for name, value in student.params.items()}
    reference.masks = {name: value.copy() for name, value in student.masks.items()}
    return reference


def student_class(module: ModuleType, name: str, item: Item) -> Any:
    value = getattr(module, name, None)
    if value is None:
        raise CheckFailed(f"{item.student_file} defines no {name}: keep the names of the original file")
    return value


def grade_dense_backward(module: ModuleType, shared: SharedRuns) -> None:
    layer = student_class(module, "Dense", BY_NAME["dense_backward"])(5, 4, rng=np.random.default_rng(0),
                                                                       dtype=np.float64)
    rng = np.random.default_rng(2)
    layer.set_mask("W", (rng.random((4, 5)) > 0.3).astype(np.float64))  # (out, in), about 30% pruned
    layer.params["b"] = rng.standard_normal(4)
    reference = with_parameters_of(Dense(5, 4, dtype=np.float64), layer)
    check_backward("Dense.backward", layer, reference, rng.standard_normal((3, 5)), input_grad=True)


def grade_relu_backward(module: ModuleType, shared: SharedRuns) -> None:
    cls = student_class(module, "ReLU", BY_NAME["relu_backward"])
    x = away_from_zero(np.random.default_rng(3).standard_normal((4, 3, 2)))  # no input at ReLU's kink
    check_backward("ReLU.backward", cls(), ReLU(), x)


def grade_maxpool_backward(module: ModuleType, shared: SharedRuns) -> None:
    cls = student_class(module, "MaxPool2d", BY_NAME["maxpool_backward"])
    rng = np.random.default_rng(4)
    cases = [  # (kernel, stride, input shape, ties): 7x7 leaves a row and a column no 2x2 window covers
        (2, None, (2, 3, 7, 7), False),
        (3, 2, (2, 2, 7, 7), False),  # overlapping windows: one input may receive several gradients
        (2, None, (2, 2, 6, 6), True),  # ties: the first maximum of a window takes the gradient
        (3, 1, (1, 2, 5, 5), True),
    ]
    for kernel, stride, shape, ties in cases:
        x = rng.integers(0, 3, shape).astype(np.float64) if ties else rng.standard_normal(shape)
        label = f"MaxPool2d({kernel}, stride={stride}).backward" + (" with ties" if ties else "")
        check_backward(label, cls(kernel, stride), MaxPool2d(kernel, stride), x, gradients=not ties)


def grade_loss_gradient(module: ModuleType, shared: SharedRuns) -> None:
    function = student_class(module, "softmax_cross_entropy", BY_NAME["loss_gradient"])
    rng = np.random.default_rng(5)
    logits, labels = 3 * rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    check = "softmax_cross_entropy"
    given = logits.copy()
    with running(check):
        result = function(given, labels)
    if not (isinstance(result, tuple) and len(result) == 2):
        fail(check, f"returned {type(result).__name__}, expected the pair (loss, dlogits)")
    dlogits = result[1]
    expect_array(check, "dlogits", dlogits, logits.shape, np.float64)
    if not np.array_equal(given, logits):
        fail(check, "it changed the logits: compute the gradient in a new array")
    with running("gradient check"):
        numeric = numerical_vjp(lambda: function(given, labels)[0], given, 1.0)
    error = rel_error(dlogits, numeric)
    if not error <= GRADIENT_TOLERANCE:
        fail("gradient check", f"dlogits disagrees with central differences: relative error {error:.2g} "
                               f"(a right gradient gives about 1e-9)")
    expect_close("same as minilottery's softmax_cross_entropy", "dlogits", dlogits,
                 softmax_cross_entropy(logits, labels)[1])
    with running("float32 logits"):
        small = function(logits.astype(np.float32), labels)[1]
    expect_array("float32 logits", "dlogits", small, logits.shape, np.float32)
    with running("large logits"):
        large = function(1000 * logits, labels)[1]
    if not np.all(np.isfinite(large)):
        fail("large logits", "logits of about 1000 give a gradient that is not finite: take the softmax as "
                             "exp(log_probs), which never overflows")


def grade_conv_backward(module: ModuleType, shared: SharedRuns) -> None:
    cls = student_class(module, "ReferenceConv2d", BY_NAME["conv_backward"])
    rng = np.random.default_rng(6)
    cases = [  # (C, F, kernel, stride, padding, input shape)
        (2, 3, 3, 2, 1, (2, 2, 5, 5)),
        (3, 2, (2, 3), 1, 0, (2, 3, 4, 5)),
    ]
    for channels, filters, kernel, stride, padding, shape in cases:
        layer = cls(channels, filters, kernel, stride, padding, rng=np.random.default_rng(0), dtype=np.float64)
        layer.set_mask("W", (rng.random(layer.params["W"].shape) > 0.3).astype(np.float64))
        layer.params["b"] = rng.standard_normal(filters)
        reference = with_parameters_of(ReferenceConv2d(channels, filters, kernel, stride, padding, dtype=np.float64),
                                       layer)
        label = f"ReferenceConv2d(kernel_size={kernel}, stride={stride}, padding={padding}).backward"
        check_backward(label, layer, reference, rng.standard_normal(shape), input_grad=True)


class _Parameters:
    """The three name -> array dicts an optimizer reads from a model."""

    def __init__(self, params: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> None:
        self.params, self.grads, self._masks = params, {}, masks

    def parameters(self) -> dict[str, np.ndarray]:
        return self.params

    def gradients(self) -> dict[str, np.ndarray]:
        return self.grads

    def masks(self) -> dict[str, np.ndarray]:
        return self._masks


def grade_adam_step(module: ModuleType, shared: SharedRuns) -> None:
    cls = student_class(module, "ReferenceAdam", BY_NAME["adam_step"])
    rng = np.random.default_rng(7)
    params = {"0.W": rng.standard_normal((4, 5)), "0.b": rng.standard_normal(4)}  # pruned weights start non-zero
    masks = {"0.W": (rng.random((4, 5)) > 0.4).astype(np.float64)}
    student_model = _Parameters({k: v.copy() for k, v in params.items()}, masks)
    reference_model = _Parameters({k: v.copy() for k, v in params.items()}, masks)
    options = dict(lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01)
    with running("ReferenceAdam(...)"):
        student = cls(student_model, **options)
    reference = ReferenceAdam(reference_model, **options)
    arrays = dict(student_model.params)  # the model's own arrays: step() must change these in place
    pruned = masks["0.W"] == 0
    for step in range(1, 6):
        grads = {name: rng.standard_normal(p.shape) for name, p in params.items()}  # non-zero where pruned, too
        student_model.grads = {name: g.copy() for name, g in grads.items()}
        reference_model.grads = grads
        check = f"step {step}"
        with running(check):
            student.step()
        reference.step()
        for name, p in student_model.params.items():
            if p is not arrays[name] or np.array_equal(p, params[name]) and step == 1:
                fail(check, f"{name} was not updated in place: write the new value into the model's array, "
                            f"p[...] = ...")
        for key in ("m", "v"):
            state = student.state.get("0.W", {}).get(key)
            expect_array(check, f"state['0.W'][{key!r}]", state, (4, 5), np.float64)
            if np.any(state[pruned] != 0):
                fail(check, f"{key} is not exactly 0 at pruned weights: build it from the masked gradient d")
        if np.any(student_model.params["0.W"][pruned] != 0):
            fail(check, "pruned weights are not exactly 0 after the step: multiply the new value by the mask")
        for name in params:
            for key in ("m", "v"):
                expect_close(f"{check}, Adam's {key} (Kingma & Ba, Algorithm 1)", f"state[{name!r}][{key!r}]",
                             student.state[name][key], reference.state[name][key])
            expect_close(f"{check}, Adam's update with bias-corrected m_hat and v_hat (Algorithm 1)", name,
                         student_model.params[name], reference_model.params[name])


def grade_prune_layer(module: ModuleType, shared: SharedRuns) -> None:
    function = student_class(module, "prune_layer", BY_NAME["prune_layer"])
    rng = np.random.default_rng(8)
    signs = rng.choice([-1.0, 1.0], (5, 4))
    cases = [  # (weight, mask, rate, what it tests)
        (rng.standard_normal((6, 7)), rng.random((6, 7)) > 0.25, 0.3, "a dense layer"),
        (rng.standard_normal((3, 2, 3, 3)), rng.random((3, 2, 3, 3)) > 0.4, 0.2, "a convolution's (F, C, KH, KW)"),
        (signs * rng.integers(1, 4, (5, 4)), rng.random((5, 4)) > 0.2, 0.4, "ties in |w|"),
        (rng.standard_normal((2, 7)), np.arange(14).reshape(2, 7) % 2 == 0, 0.5, "round(0.5 * 7) = 4 weights"),
        (rng.standard_normal((3, 3)), np.ones((3, 3), dtype=bool), 0.0, "rate 0"),
    ]
    for weight, mask, rate, what in cases:
        check = f"prune_layer on {what} (rate {rate})"
        given_weight, given_mask = weight.copy(), mask.copy()
        with running(check):
            new = function(given_weight, given_mask, rate)
        if not (np.array_equal(given_weight, weight) and np.array_equal(given_mask, mask)):
            fail(check, "it changed its input: return a new mask and leave weight and mask as they were")
        expect_array(check, "the new mask", new, mask.shape, np.bool_)
        if np.any(new & ~mask):
            fail(check, "a pruned weight came back: the new mask must keep a subset of the old one")
        alive, kept = int(mask.sum()), int(new.sum())
        count = int(round(rate * alive))
        if alive - kept != count:
            fail(check, f"removed {alive - kept} of the {alive} alive weights, expected round({rate} * {alive}) "
                        f"= {count}")
        removed = np.abs(weight[mask & ~new])
        remaining = np.abs(weight[new])
        if removed.size and remaining.size and removed.max() > remaining.min():
            fail(check, f"removed a weight with |w| = {removed.max():.3g} but kept one with |w| = "
                        f"{remaining.min():.3g}: remove the smallest magnitudes")
        expect_close(f"{check}, ties: of equal |w| the earlier index goes first (a stable sort)", "the new mask",
                     new, prune.prune_layer(weight, mask, rate), exact=True)


def grade_random_prune(module: ModuleType, shared: SharedRuns) -> None:
    function = student_class(module, "random_prune", BY_NAME["random_prune"])
    rng = np.random.default_rng(9)
    masks = {"1.W": rng.random((8, 10)) > 0.4, "3.W": rng.random((8, 10)) > 0.4, "5.W": rng.random((4, 5)) > 0.6}
    masks["3.W"] = masks["1.W"].copy()  # two layers alike: their random masks must still differ
    check = "random_prune"
    given = {name: m.copy() for name, m in masks.items()}
    with running(check):
        first = function(given, np.random.default_rng(0))
    if not all(np.array_equal(given[name], m) for name, m in masks.items()):
        fail(check, "it changed the masks it was given: return new ones")
    if not isinstance(first, dict) or set(first) != set(masks):
        fail(check, f"expected a dict with the keys {sorted(masks)}, got {type(first).__name__}"
                    f"{' with ' + str(sorted(first)) if isinstance(first, dict) else ''}")
    for name, mask in masks.items():
        expect_array(check, f"the mask of {name}", first[name], mask.shape, np.bool_)
        if int(first[name].sum()) != int(mask.sum()):
            fail("kept per layer", f"{name} keeps {int(first[name].sum())} weights, the given mask "
                                   f"{int(mask.sum())}: keep as many as the given mask in each layer")
    with running(check):
        again = function(masks, np.random.default_rng(0))
        other = function(masks, np.random.default_rng(1))
    if not all(np.array_equal(first[name], again[name]) for name in masks):
        fail("seeded", "two generators with the same seed gave different masks: draw only from rng")
    if all(np.array_equal(first[name], other[name]) for name in masks):
        fail("seeded", "generators with different seeds gave the same masks: draw the positions from rng")
    if np.array_equal(first["1.W"], first["3.W"]):
        fail("random per layer", "two layers with the same mask got the same random mask: draw each layer anew")
    counts = np.zeros(12)
    small = {"a": np.arange(12).reshape(3, 4) < 4}  # keeps the first 4 of 12
    draws = np.random.default_rng(2)
    with running("uniform"):
        for _ in range(300):
            counts += function(small, draws)["a"].reshape(-1)
    if counts.min() < 45 or counts.max() > 165:  # expected 100 of 300 each; 45 and 165 are > 6 sigma away
        fail("uniform", f"over 300 draws keeping 4 of 12 positions, some position was kept {int(counts.min())} "
                        f"times and another {int(counts.max())} (about 100 expected): draw positions uniformly "
                        f"from the whole layer")


# -- IMP and its controls: a tiny run, the student's code against the package's, bit for bit ----------------------


def tiny_data(seed: int = 0) -> Dataset:
    """A small learnable data set of 10 x 6 images: each class brightens its own row, plus noise."""
    rng = np.random.default_rng(seed)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, n).astype(np.int64)
        x = 0.5 * rng.random((n, 1, 10, 6), dtype=np.float32)  # (n, C, H, W)
        x[np.arange(n), 0, y, :] += 0.5
        return x, y

    return Dataset(*split(120), *split(40), *split(40), name="tiny")


TINY_CONFIG = imp.IMPConfig(model="lenet_300_100", rounds=2, train=TrainConfig(iterations=6, batch_size=20,
                                                                               eval_every=3))


class SharedRuns:
    """What several items compare against, computed once per grading: the package's own IMP run on
    ``tiny_data`` and its θ0."""

    @property
    def data(self) -> Dataset:
        """A fresh copy each time: what the student's code is given, it may change without harming the rest."""
        return tiny_data()

    @functools.cached_property
    def reference(self) -> imp.IMPResult:
        return imp.run_imp(TINY_CONFIG, tiny_data(), device="cpu", progress=False)

    @functools.cached_property
    def theta0(self) -> dict[str, np.ndarray]:
        return build_model(TINY_CONFIG.model, tuple(self.data.x_train.shape[1:]), seed=TINY_CONFIG.seed).state_dict()

    @functools.cache  # noqa: B019 - the cache holds self, which lives for one grading only
    def control_round(self, control: str) -> imp.RoundResult:
        """Round 1 of the reference run trained again with ``control`` (the package's ``train_round``)."""
        config = dataclasses.replace(TINY_CONFIG, controls=(control,))
        rnd, _ = imp.train_round(config, self.data, 1, self.reference.rounds[1].masks, self.theta0, None, "cpu",
                                 False)
        return rnd


def same_arrays(check: str, what: str, got: Any, expected: dict[str, np.ndarray]) -> None:
    """Name -> array dicts equal bit for bit (same names, shapes, dtypes, values)."""
    if not isinstance(got, dict) or set(got) != set(expected):
        fail(check, f"{what} should have the names {sorted(expected)}")
    for name, array in expected.items():
        expect_close(check, f"{what}[{name!r}]", got[name], array, exact=True)


def grade_imp_loop(module: ModuleType, shared: SharedRuns) -> None:
    function = student_class(module, "run_imp", BY_NAME["imp_loop"])
    reference = shared.reference.rounds
    check = "run_imp (2 rounds)"
    with running(check):
        result = function(TINY_CONFIG, shared.data, device="cpu", progress=False)
    rounds = getattr(result, "rounds", None)
    if not isinstance(rounds, list) or [getattr(r, "index", None) for r in rounds] != [0, 1, 2]:
        fail(check, "expected rounds 0, 1 and 2 in result.rounds")
    if not all(np.all(m) for m in rounds[0].masks.values()):
        fail("round 0", "the dense round must keep every weight (full_masks)")
    for rnd, expected in zip(rounds, reference):
        r = rnd.index
        if r > 0 and not prune.check_nested(rnd.masks, rounds[r - 1].masks):
            fail(f"round {r}", "its masks keep a weight the previous round had pruned: masks must shrink")
        ticket = rnd.arms["ticket"]
        reset = prune.masked_weights(shared.theta0, rnd.masks)
        if not all(np.array_equal(ticket.init_weights[n], reset[n]) for n in reset):
            fail(f"round {r}", "the ticket does not start from θ0 ⊙ m: reset the surviving weights to θ0 "
                               "(Section 2, step 4)")
        same_arrays(f"round {r}, the previous round's trained ticket pruned by magnitude (next_masks)", "masks",
                    rnd.masks, expected.masks)
        same_arrays(f"round {r}, same training as minilottery's", "the ticket's final weights",
                    ticket.final_weights, expected.arms["ticket"].final_weights)


def _control_round(module: ModuleType, shared: SharedRuns, control: str) -> tuple[Any, Any]:
    """Round 1 with ``control``, trained by the student's ``train_round`` and by the package's."""
    function = student_class(module, "train_round", BY_NAME[f"control_{control}"])
    config = dataclasses.replace(TINY_CONFIG, controls=(control,))
    masks = shared.reference.rounds[1].masks
    expected = shared.control_round(control)
    given_masks = {name: mask.copy() for name, mask in masks.items()}  # copies: the student's code may change them
    given_theta0 = {name: value.copy() for name, value in shared.theta0.items()}
    with running(f"train_round with the {control} control"):
        student, _ = function(config, shared.data, 1, given_masks, given_theta0, None, "cpu", False)
    if control not in getattr(student, "arms", {}):
        fail(f"train_round with the {control} control", f"round 1 has no {control!r} arm")
    return student, expected


def grade_control_reinit(module: ModuleType, shared: SharedRuns) -> None:
    student, expected = _control_round(module, shared, "reinit")
    arm, ticket = student.arms["reinit"], student.arms["ticket"]
    same_arrays("reinit keeps the ticket's masks", "masks", arm.masks, ticket.masks)
    kept = ticket.masks["1.W"]
    if np.array_equal(arm.init_weights["1.W"][kept], shared.theta0["1.W"][kept]):
        fail("reinit draws a new initialisation", "the reinit arm starts from θ0: draw a fresh θ0' with build_model")
    same_arrays("reinit's θ0' is build_model(..., seed=config.seed + REINIT_SEED_OFFSET + index)", "init weights",
                arm.init_weights, expected.arms["reinit"].init_weights)
    same_arrays("reinit trains as minilottery's", "final weights", arm.final_weights,
                expected.arms["reinit"].final_weights)


def grade_control_random_prune(module: ModuleType, shared: SharedRuns) -> None:
    student, expected = _control_round(module, shared, "random_prune")
    arm, ticket = student.arms["random_prune"], student.arms["ticket"]
    for name, mask in ticket.masks.items():
        if int(np.count_nonzero(arm.masks[name])) != int(mask.sum()):
            fail("random_prune keeps the ticket's count per layer", f"{name} keeps "
                 f"{int(np.count_nonzero(arm.masks[name]))} weights, the ticket {int(mask.sum())}")
    if np.array_equal(arm.masks["1.W"], ticket.masks["1.W"]):
        fail("random_prune draws new masks", "the arm trains with the ticket's own masks: draw random ones")
    reset = prune.masked_weights(shared.theta0, arm.masks)
    if not all(np.array_equal(arm.init_weights[n], reset[n]) for n in reset):
        fail("random_prune starts from the ticket's θ0", "its surviving weights must take their θ0 values")
    same_arrays("random_prune's masks come from np.random.default_rng([config.seed, RANDOM_PRUNE_STREAM, index])",
                "masks", arm.masks, expected.arms["random_prune"].masks)
    same_arrays("random_prune trains as minilottery's", "final weights", arm.final_weights,
                expected.arms["random_prune"].final_weights)


CHECKS: dict[str, Callable[[ModuleType, SharedRuns], None]] = {
    "dense_backward": grade_dense_backward,
    "relu_backward": grade_relu_backward,
    "maxpool_backward": grade_maxpool_backward,
    "loss_gradient": grade_loss_gradient,
    "conv_backward": grade_conv_backward,
    "adam_step": grade_adam_step,
    "prune_layer": grade_prune_layer,
    "random_prune": grade_random_prune,
    "imp_loop": grade_imp_loop,
    "control_reinit": grade_control_reinit,
    "control_random_prune": grade_control_random_prune,
}

# -- scoring -------------------------------------------------------------------------------------------------------

NOT_IMPLEMENTED = "not implemented yet"


@dataclass(frozen=True)
class Score:
    """One item's result: ``earned`` of ``item.points``, and why not all of them (None when it passed)."""

    item: Item
    earned: int
    message: str | None

    @property
    def passed(self) -> bool:
        return self.message is None

    def line(self, width: int = max(map(len, ITEM_NAMES))) -> str:
        text = f"{self.item.name:<{width}}  {self.earned:>3}/{self.item.points:<3}"
        return text.rstrip() if self.passed else f"{text}  {self.message}"


def grade_item(submission: Submission, item: Item, shared: SharedRuns) -> Score:
    """Runs ``item``'s checks on the submission: all its points when every check passes, else 0 and the first
    failure's one-line message."""
    try:
        module = submission.module(item)
        with warnings.catch_warnings():  # a tiny training at chance level warns; the checks judge the numbers
            warnings.simplefilter("ignore")
            CHECKS[item.name](module, shared)
    except CheckFailed as exc:
        return Score(item, 0, str(exc))
    except NotImplementedError:
        return Score(item, 0, NOT_IMPLEMENTED)
    except CheckError as exc:
        return Score(item, 0, f"{exc.check}: {submission.describe(exc.error)}")
    except Exception as exc:  # e.g. a result without the attributes the checks read
        return Score(item, 0, f"checking what the code returned: {submission.describe(exc)}")
    return Score(item, item.points, None)


def grade(folder: str | Path | None, items: Sequence[str] | None = None) -> list[Score]:
    """Grades a student's folder (``None``: the package's own files) on ``items`` (default: all ``ITEMS``).

    Raises:
        ValueError: the folder does not exist, or an item name is unknown.
    """
    if folder is not None:
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"{folder}: no such folder; write an assignment there with `minilottery assignment "
                             f"{folder}`")
    unknown = [name for name in items or () if name not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown item {unknown[0]!r}; the items are {', '.join(ITEM_NAMES)}")
    chosen = [item for item in ITEMS if items is None or item.name in items]
    submission, shared = Submission(folder), SharedRuns()
    return [grade_item(submission, item, shared) for item in chosen]


def report(scores: Sequence[Score]) -> str:
    """One line per item, then the total."""
    width = max(len(score.item.name) for score in scores)
    earned, points = sum(s.earned for s in scores), sum(s.item.points for s in scores)
    lines = [score.line(width) for score in scores]
    passed = sum(score.passed for score in scores)
    lines.append(f"{'total':<{width}}  {earned:>3}/{points:<3}  ({passed} of {len(scores)} items pass)")
    return "\n".join(lines)


__all__ = ["CHECKS", "Score", "grade", "report"]
