"""Pruning at initialization: masks chosen at θ0, before any training, beside IMP's tickets.

IMP finds a ticket by training, pruning and resetting again and again. Could a mask be chosen at θ0 without any
training? Three well-known methods score every weight at θ0 and keep the highest scores over all layers pooled
(``prune.keep_highest_global``: exact counts, ties by position); a fourth is the random baseline:

    snip     Lee, Ajanthan & Torr, "SNIP: single-shot network pruning based on connection sensitivity" (ICLR 2019),
             Section 4.1: the connection sensitivity |g ⊙ θ|, with g = ∂L/∂θ on a batch of training examples.
             Keeps the highest.
    grasp    Wang, Zhang & Grosse, "Picking winning tickets before training by preserving gradient flow" (ICLR
             2020), Section 4, Eq. 8: the score S(-θ) = -θ ⊙ Hg, with H the Hessian of the loss and g its gradient.
             The paper *removes the highest* scores (Algorithm 1, line 5: removing those weights reduces the
             gradient flow least, or even increases it), so the mask keeps the *lowest* -θ ⊙ Hg, i.e. the
             highest θ ⊙ Hg, as the authors' code does (it prunes the top-k of -θ ⊙ Hg). As in that code the
             logits are divided by a temperature T = 200 (the paper does not say so; T = 1 is the plain loss).
             Hg is computed by central differences of two gradients, in float64, no second backward pass:
             Hg ≈ (∇L(θ + εg) - ∇L(θ - εg)) / 2ε, with ε·‖g‖ = ``GRASP_STEP``, small enough that no ReLU changes
             sign within the step (``hessian_gradient_product`` checks it).
    synflow  Tanaka, Kunin, Yamins & Ganguli, "Pruning neural networks without any data by iteratively
             conserving synaptic flow" (NeurIPS 2020), Algorithm 1: data-free. The network with |θ| in place of
             θ and its biases off (0; they are 0 at θ0 anyway) maps an all-ones input to a positive output, whose
             sum is R = 1ᵀ(∏ |W_l|)1 for dense layers (ReLU is the identity on positive inputs). The score is
             |θ ⊙ ∂R/∂θ|. It prunes in ``SYNFLOW_ROUNDS`` rounds (100), keeping ρ^(k/n) of the weights after
             round k of n (the paper's exponential schedule, ρ the final fraction), the masks applied between
             rounds, so that no layer is cut off whole (its "layer collapse", Section 3). A max pool is not
             linear even on positive values: it passes each window's largest input, and ∂R/∂θ flows through
             that one input only (as in the authors' code, which keeps its pools).
    random   random masks with the ticket's per-layer counts (``prune.random_prune``): what IMP's random-pruning
             control does, drawn from another stream, so a second random draw beside the run's own.

    snip_shuffled, grasp_shuffled, synflow_shuffled: the sanity check of Frankle et al. (2021, Section 5) on
             these methods: the method's masks shuffled within each layer (``prune.random_prune``: the same
             per-layer counts, new positions). If a method's choice of positions mattered, shuffling would hurt,
             as it hurts IMP's tickets (``minilottery sanity``); they found it does not for these methods.

Frankle, Dziugaite, Roy & Carbin, "Pruning neural networks at initialization: why are we missing the mark?"
(ICLR 2021) compared these with IMP: at high sparsity all fall short of IMP's tickets, and (their Section 5)
they are not much better than random pruning with their own per-layer proportions.

``run_prune_at_init`` computes the masks at the given sparsities and trains each once with the same settings
(``imp.train_arm``). Given a finished IMP run, everything shares its start weights (θ0, or θK of a rewinding
run), its training settings, the sparsities of its rounds and, for ``random``, its ticket's per-layer counts;
the run's ticket and controls are read from it, not trained again. Without a run, θ0 is ``build_model``'s for the
seed, and a percent is turned into per-layer counts the way IMP's per-layer rates would prune the network to it
(``prune.one_shot_rates``); the global methods keep the same total. The results go to ``OUT/prune_at_init.json``
after every training (a killed run continues when run again) and to one figure,
``OUT/figures/prune_at_init_accuracy_vs_weights.{png,pdf}``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from minilottery.backend import get_array_module, to_device, to_numpy
from minilottery.checks import check_choices
from minilottery.imp import ARM_METRICS, IMPConfig, train_arm
from minilottery.lab import runs
from minilottery.lab.transfer import SourceRun
from minilottery.layers import Sequential
from minilottery.loss import softmax_cross_entropy
from minilottery.models import build_model, weight_names
from minilottery.prune import (
    default_rates,
    full_masks,
    keep_highest,
    keep_highest_global,
    one_shot_rates,
    prune_count,
    random_prune,
    sparsity,
)

RECORD_FILE = "prune_at_init.json"
FIGURE = "prune_at_init_accuracy_vs_weights"
DEFAULT_METHODS = ("snip", "grasp", "synflow", "random")
SHUFFLED = "_shuffled"  # "snip_shuffled": SNIP's masks shuffled within each layer (the sanity check)
METHODS = (*DEFAULT_METHODS, *(f"{m}{SHUFFLED}" for m in ("snip", "grasp", "synflow")))
RUN_ARMS = ("ticket", "reinit", "random_prune")  # read from the run, for comparison
EXAMPLES = 100  # training examples SNIP's and GraSP's gradients average over (GraSP's code: 10 per class)
GRASP_TEMPERATURE = 200.0  # GraSP's code divides the logits by T = 200
GRASP_STEP = 1e-6  # length ‖εg‖ of the finite-difference step along g (parameter space, float64)
AGREEMENT = 1e-6  # relative change of Hg between a step and a ten times smaller one that accepts the estimate
SHRINKS = 4  # how many times the step may shrink tenfold before GraSP gives up
SYNFLOW_ROUNDS = 100  # the SynFlow paper's 100 iterations
SCORE_STREAM = 11  # the scoring batch comes from default_rng([seed, 11])
RANDOM_STREAM = 12  # random masks of R remaining weights come from default_rng([seed, 12, R])
SHUFFLE_STREAM = 13  # method i's shuffled masks of R weights come from default_rng([seed, 13, R, i])


# -- gradients and scores -----------------------------------------------------------------------------


def loss_gradients(model: Sequential, x: Any, y: Any, temperature: float = 1.0) -> dict[str, Any]:
    """∂L/∂W of every weight, L the mean cross-entropy of softmax(f(x) / T): one forward and one backward pass.

    Args:
        model: the network (float64 to score); x: (N, C, H, W) on its device; y: (N,) int labels.
        temperature: T; the logits are divided by it (1: the training loss).

    Returns:
        weight name -> gradient of the weight's shape (a copy: the next backward does not change it).
    """
    logits = model.forward(x)  # (N, 10)
    _, dscaled = softmax_cross_entropy(logits / temperature, y)
    model.backward(dscaled / temperature, input_grad=False)  # chain rule through the division by T
    grads = model.gradients()
    return {name: grads[name].copy() for name in weight_names(model)}


def snip_scores(model: Sequential, x: Any, y: Any) -> dict[str, np.ndarray]:
    """SNIP's connection sensitivity |g ⊙ θ| of every weight (Lee et al. 2019, Eq. 6, before normalising, which
    does not change the ranking). Host arrays of each weight's shape."""
    grads = loss_gradients(model, x, y)
    params = model.parameters()
    return {name: to_numpy(abs(grads[name] * params[name])) for name in grads}


def hessian_gradient_product(model: Sequential, x: Any, y: Any, temperature: float = GRASP_TEMPERATURE,
                             step: float = GRASP_STEP) -> tuple[dict[str, Any], dict[str, Any]]:
    """(g, Hg) for the weights: the gradient and the Hessian-gradient product of the loss (at temperature T).

    Hg is the directional derivative of the gradient along g, by central differences:
    Hg ≈ (∇L(θ + εg) - ∇L(θ - εg)) / 2ε with ε = ``step`` / ‖g‖, so that the step has length ``step``; in float64
    (the difference of two close gradients loses float32's few digits). Where the loss is smooth the error is
    O(ε²). But a ReLU whose input changes sign between θ - εg and θ + εg makes the gradient jump, and the
    difference divides that jump by 2ε: on LeNet-300-100 with 100 examples, one such flip at a step of 1e-4
    changed Hg by more than its own norm. So the estimate is accepted only when the one at a ten times smaller
    step agrees with it (to ``AGREEMENT``); otherwise the step shrinks tenfold, up to ``SHRINKS`` times. The
    accepted Hg is the Hessian of the smooth piece θ lies in, as a second backward pass (autodiff) computes it.
    The weights are restored exactly afterwards.

    Raises:
        ValueError: the estimates never agreed (a kink closer than any step tried).
    """
    g = loss_gradients(model, x, y, temperature)
    xp = get_array_module(*g.values())
    norm = _norm(g)
    if norm == 0.0:  # a flat loss: no gradient flow to preserve, every score is 0
        return g, {name: xp.zeros_like(grad) for name, grad in g.items()}
    theta = {name: model.parameters()[name].copy() for name in g}

    def difference(length: float) -> dict[str, Any]:
        eps = length / norm
        gradients = []
        for sign in (1.0, -1.0):
            for name in g:
                model.set_parameter(name, theta[name] + sign * eps * g[name])
            gradients.append(loss_gradients(model, x, y, temperature))
        for name in g:
            model.set_parameter(name, theta[name])
        plus, minus = gradients
        return {name: (plus[name] - minus[name]) / (2.0 * eps) for name in g}

    hg = difference(step)
    for _ in range(SHRINKS):
        finer = difference(step / 10)
        change = _norm({name: finer[name] - hg[name] for name in g}) / max(_norm(finer), 1e-300)
        if change <= AGREEMENT:
            return g, hg
        step, hg = step / 10, finer
    raise ValueError(f"GraSP's Hessian-gradient product did not settle down to a step of {step:g} (a ReLU input "
                     f"too close to 0); try another --seed or --examples")


def _norm(arrays: Mapping[str, Any]) -> float:
    """The Euclidean norm of all the arrays together."""
    return math.sqrt(sum(float((a * a).sum()) for a in arrays.values()))


def grasp_scores(model: Sequential, x: Any, y: Any, temperature: float = GRASP_TEMPERATURE,
                 step: float = GRASP_STEP) -> dict[str, np.ndarray]:
    """GraSP's score S(-θ) = -θ ⊙ Hg of every weight (Wang et al. 2020, Eq. 8). Host arrays.

    The paper removes the weights with the highest scores: keep the lowest (``masks_for`` does).
    """
    _, hg = hessian_gradient_product(model, x, y, temperature, step)
    params = model.parameters()
    return {name: to_numpy(-params[name] * hg[name]) for name in hg}


def synflow_scores(model: Sequential, weights: Mapping[str, Any], masks: Mapping[str, np.ndarray],
                   input_shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """SynFlow's |θ ⊙ ∂R/∂θ| for the network with |θ| ⊙ mask as weights and no biases (Tanaka et al. 2020, Eq. 2).

    Args:
        model: the architecture (its parameters are replaced here); float64 keeps R from overflowing.
        weights: name -> θ of every parameter (θ0); only the magnitudes of the weights are used.
        masks: weight name -> bool mask (True = kept) applied to |θ|.
        input_shape: (C, H, W) of one input; R is the sum of the output for one all-ones input.

    Returns:
        weight name -> host score array; 0 for a pruned weight (its gradient is masked).
    """
    names = weight_names(model)
    for name, value in weights.items():
        # |θ| for the weights, 0 for the biases: every unit's input stays positive, so ReLU passes it unchanged
        model.set_parameter(name, np.abs(value) if name in names else np.zeros_like(value))
    model.set_masks(dict(masks))
    params = model.parameters()
    first = params[names[0]]
    xp = get_array_module(first)
    ones = xp.ones((1, *input_shape), dtype=first.dtype)  # (1, C, H, W)
    out = model.forward(ones)  # (1, 10); R = out.sum()
    model.backward(xp.ones_like(out), input_grad=False)  # ∂R/∂out = 1
    grads = model.gradients()
    return {name: to_numpy(abs(params[name] * grads[name])) for name in names}


def synflow_masks(model: Sequential, weights: Mapping[str, Any], count: int, input_shape: tuple[int, ...],
                  rounds: int = SYNFLOW_ROUNDS) -> dict[str, np.ndarray]:
    """SynFlow's iterative pruning (Algorithm 1) to exactly ``count`` weights kept.

    Round k of n keeps round(ρ^(k/n) · total) weights (ρ = count / total; the last keeps ``count`` exactly), scoring
    with the masks of the round before. A pruned weight scores -inf, so it stays pruned: the masks shrink.
    """
    names = weight_names(model)
    masks = full_masks({name: weights[name] for name in names})
    total = sum(mask.size for mask in masks.values())
    for k in range(1, rounds + 1):
        keep = count if k == rounds else int(round(total * (count / total) ** (k / rounds)))
        scores = synflow_scores(model, weights, masks, input_shape)
        scores = {name: np.where(masks[name], scores[name], -np.inf) for name in names}
        masks = keep_highest_global(scores, keep)
    return masks


def masks_from_scores(method: str, scores: Mapping[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
    """The ``count`` weights ``method`` keeps given its scores, over all layers pooled: SNIP's highest, GraSP's
    lowest (the paper removes the highest -θ ⊙ Hg)."""
    if method == "grasp":
        return keep_highest_global({name: -score for name, score in scores.items()}, count)
    return keep_highest_global(scores, count)


# -- targets and masks ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    """One sparsity to prune to: per-layer counts (their sum is the count every method keeps), and where from.

    Attributes:
        counts: weight name -> weights kept in that layer (``random`` keeps these; the others only their sum).
        percent: the percent asked for (``--percent``), or None when every round of the run is taken.
        round: the run's round with these counts, or None without a run.
        ticket: that round's ticket masks (the template of ``random``), or None without a run.
    """

    counts: dict[str, int]
    percent: float | None = None
    round: int | None = None
    ticket: dict[str, np.ndarray] | None = None

    @property
    def remaining(self) -> int:
        return sum(self.counts.values())


def targets_from_run(source: SourceRun, percents: Sequence[float] | None) -> list[Target]:
    """The run's round nearest each percent (log scale, within ``paper.NEAR``), or every pruned round.

    Raises:
        ValueError: a percent with no round near it.
    """
    from minilottery.lab.paper import round_near

    if percents is None:
        chosen = [(None, info) for info in source.rounds[1:]]
    else:
        chosen = []
        for percent in percents:
            info = round_near({"rounds": source.rounds}, percent)
            if isinstance(info, str):
                kept = ", ".join(f"{r['percent_remaining']:.1f}" for r in source.rounds[1:]) or "none"
                raise ValueError(f"--percent {percent:g}: {info} in {source.path} (its rounds keep {kept}%); "
                                 f"choose percents of its rounds")
            chosen.append((percent, info))
    targets = []
    for percent, info in chosen:
        ticket = source.masks(info["round"])
        targets.append(Target({name: int(mask.sum()) for name, mask in ticket.items()}, percent, info["round"],
                              ticket))
    return targets


def targets_from_percents(config: IMPConfig, model: Sequential, percents: Sequence[float]) -> list[Target]:
    """Per-layer counts for each percent as IMP's per-layer rates would leave them (``prune.one_shot_rates``)."""
    rates = default_rates(config.model, model, config.prune_rate, config.conv_rate, config.output_rate)
    sizes = {name: int(model.parameters()[name].size) for name in rates}
    targets = []
    for percent in percents:
        layer_rates = one_shot_rates(rates, sizes, target_percent=percent)
        counts = {name: sizes[name] - prune_count(layer_rates[name], sizes[name]) for name in rates}
        targets.append(Target(counts, percent))
    return targets


class Scorer:
    """Computes each method's masks at the start weights; SNIP's and GraSP's scores once for every target.

    Args:
        config: the model and seed; input_shape: (C, H, W); start: name -> θ0 (host arrays).
        data: the ``Dataset`` whose training images SNIP and GraSP score on (``examples`` of them, drawn with
            ``default_rng([seed, SCORE_STREAM])``); SynFlow and random use no data.
    """

    def __init__(self, config: IMPConfig, input_shape: tuple[int, ...], start: Mapping[str, np.ndarray], data: Any,
                 *, examples: int = EXAMPLES, synflow_rounds: int = SYNFLOW_ROUNDS,
                 temperature: float = GRASP_TEMPERATURE, step: float = GRASP_STEP, device: str = "cpu") -> None:
        self.config, self.input_shape, self.start = config, tuple(input_shape), dict(start)
        self.data, self.examples, self.synflow_rounds = data, examples, synflow_rounds
        self.temperature, self.step, self.device = temperature, step, device
        self._scores: dict[str, dict[str, np.ndarray]] = {}

    def model(self) -> Sequential:
        """The architecture in float64 on the device, with the start weights."""
        model = build_model(self.config.model, self.input_shape, seed=self.config.seed, dtype=np.float64)
        model.load_state_dict(self.start)
        return model.to(self.device)

    def batch(self) -> tuple[Any, Any]:
        """(x, y): ``examples`` training images (float64) and labels, drawn once for the seed, on the device."""
        n = len(self.data.y_train)
        if not 1 <= self.examples <= n:
            raise ValueError(f"--examples must be between 1 and the {n} training examples, got {self.examples}")
        index = np.random.default_rng([self.config.seed, SCORE_STREAM]).choice(n, self.examples, replace=False)
        x = np.asarray(self.data.x_train[index], dtype=np.float64)  # (examples, C, H, W)
        return to_device(x, self.device), to_device(np.asarray(self.data.y_train[index]), self.device)

    def scores(self, method: str) -> dict[str, np.ndarray]:
        """SNIP's or GraSP's scores at the start weights (computed on first use)."""
        if method not in self._scores:
            compute = {"snip": snip_scores, "grasp": self._grasp}[method]
            self._scores[method] = compute(self.model(), *self.batch())
        return self._scores[method]

    def _grasp(self, model: Sequential, x: Any, y: Any) -> dict[str, np.ndarray]:
        return grasp_scores(model, x, y, self.temperature, self.step)

    def masks(self, method: str, target: Target) -> dict[str, np.ndarray]:
        """``method``'s masks keeping exactly ``target.remaining`` weights (``random``: its per-layer counts)."""
        if method in ("snip", "grasp"):
            return masks_from_scores(method, self.scores(method), target.remaining)
        if method == "synflow":
            return synflow_masks(self.model(), self.start, target.remaining, self.input_shape, self.synflow_rounds)
        if method.endswith(SHUFFLED):  # the method's own per-layer counts, at new positions
            base = method[:-len(SHUFFLED)]
            rng = np.random.default_rng([self.config.seed, SHUFFLE_STREAM, target.remaining, METHODS.index(base)])
            return random_prune(self.masks(base, target), rng)
        if method == "random":
            # random_prune reads only each layer's count: the ticket's, or the first positions of a layer
            template = target.ticket if target.ticket is not None else keep_highest(
                {name: np.zeros(self.start[name].shape) for name in target.counts}, target.counts)
            return random_prune(template, np.random.default_rng([self.config.seed, RANDOM_STREAM, target.remaining]))
        raise ValueError(f"unknown method {method!r}; methods are {', '.join(METHODS)}")


# -- the experiment ------------------------------------------------------------------------------------


def run_prune_at_init(
    data: Any,
    out_dir: str | Path,
    methods: Sequence[str] = DEFAULT_METHODS,
    *,
    run: str | Path | None = None,
    percents: Sequence[float] | None = None,
    config: IMPConfig | None = None,
    examples: int = EXAMPLES,
    synflow_rounds: int = SYNFLOW_ROUNDS,
    temperature: float = GRASP_TEMPERATURE,
    step: float = GRASP_STEP,
    device: str = "cpu",
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Prunes at the start weights with each method at each sparsity and trains every mask once (module docstring).

    Args:
        data: the ``Dataset`` to score on and train on (the run's data set when ``run`` is given).
        out_dir: where ``prune_at_init.json`` and the figure go. A folder holding the same experiment continues
            it (methods and sparsities may be added); another one's is refused.
        methods: some of ``METHODS``.
        run: a finished ``minilottery imp`` run folder: its start weights, training settings and rounds.
        percents: percents of weights remaining; with ``run``, its nearest rounds (default: every pruned round).
        config: the model and training settings without ``run`` (required then).
        examples, synflow_rounds, temperature, step: the methods' settings (module constants).

    Returns:
        The content of ``prune_at_init.json``: ``{"run", "config", "scoring", "points"}``, ``points`` a list of
        ``{"percent_requested", "round", "percent_remaining", "remaining", "total", "methods": {method:
        ARM_METRICS and "layers": {name: percent kept}}}``, sparsest last; ``run`` None or ``{"path", "rounds"}``
        with each round's percent and the run's arms (``ARM_METRICS``).
    """
    check_choices("--method", methods, METHODS)
    if run is not None:
        source = SourceRun.read(run)
        config, input_shape, start = source.config, source.input_shape, source.start
    else:
        if config is None or not percents:
            raise ValueError("give a run (--run RUN) or percents (--percent P[,P...]) with the training settings")
        input_shape = tuple(data.x_train.shape[1:])
        start = build_model(config.model, input_shape, seed=config.seed).state_dict()  # IMP's θ0 for the seed
    if tuple(data.x_train.shape[1:]) != tuple(input_shape):
        raise ValueError(f"the run's {config.model} takes {tuple(input_shape)} images, but {data.name or 'the data'} "
                         f"has {tuple(data.x_train.shape[1:])}")
    if run is not None:
        targets = targets_from_run(source, percents)
    else:
        targets = targets_from_percents(config, build_model(config.model, input_shape, seed=config.seed), percents)
    scorer = Scorer(config, input_shape, start, data, examples=examples, synflow_rounds=synflow_rounds,
                    temperature=temperature, step=step, device=device)
    header = {"run": None if run is None else {"path": str(source.path), "rounds": _run_rounds(source)},
              "config": config.to_dict(),
              "scoring": {"examples": examples, "synflow_rounds": synflow_rounds, "grasp_temperature": temperature,
                          "grasp_step": step}}
    total = sum(int(start[name].size) for name in targets[0].counts) if targets else 0
    out = Path(out_dir)
    with runs.locked(out):
        record = _open_record(out, header)
        for target in sorted(targets, key=lambda t: -t.remaining):
            point = _point(record, target, total)
            for method in methods:
                if method in point["methods"]:
                    continue
                masks = scorer.masks(method, target)
                kept = sparsity(masks)
                if kept["remaining"] != target.remaining:  # every method keeps exactly the same number
                    raise AssertionError(f"{method} kept {kept['remaining']} weights, not {target.remaining}")
                desc = f"{kept['percent']:.1f}% {method}"
                result, _ = train_arm(config, data, start, masks, device, progress, desc)
                layers = {name: layer["percent"] for name, layer in kept["layers"].items()}
                point["methods"][method] = {**{key: result.metrics[key] for key in ARM_METRICS}, "layers": layers}
                runs.atomic_write_json(out / RECORD_FILE, record)
                if log is not None:
                    log(f"{kept['percent']:.1f}% of weights, {method}: test accuracy "
                        f"{100 * result.metrics['test_accuracy_at_early_stop']:.2f}% "
                        f"(stop {result.metrics['early_stop_iteration']})")
    return record


def _run_rounds(source: SourceRun) -> list[dict[str, Any]]:
    """Each round of the run: its percent remaining and its arms' ``ARM_METRICS`` (a summary's shape, for plots)."""
    return [{"round": info["round"], "percent_remaining": info["percent_remaining"],
             "arms": {arm: {key: metrics[key] for key in ARM_METRICS} for arm, metrics in info["arms"].items()}}
            for info in source.rounds]


def _open_record(out: Path, header: dict[str, Any]) -> dict[str, Any]:
    """The prune_at_init.json to continue (same run folder, config and scoring settings; the run's rounds are read
    afresh), else a new one; another experiment's folder is refused."""
    path = out / RECORD_FILE
    if not path.is_file():
        return {**header, "points": []}
    old = runs.read_json(path, dict)
    same = (old.get("config") == header["config"] and old.get("scoring") == header["scoring"]
            and (old.get("run") or {}).get("path") == (header["run"] or {}).get("path"))
    if not same:
        raise ValueError(f"{out} holds another pruning-at-initialization experiment ({path}); choose another --out")
    old["run"] = header["run"]
    return old


def _point(record: dict[str, Any], target: Target, total: int) -> dict[str, Any]:
    """The entry of ``record["points"]`` with ``target``'s count (created, sparsest last, if missing); ``total``:
    the network's number of weights."""
    for point in record["points"]:
        if point["remaining"] == target.remaining:
            return point
    point = {"percent_requested": target.percent, "round": target.round,
             "percent_remaining": 100.0 * target.remaining / total, "remaining": target.remaining, "total": total,
             "methods": {}}
    record["points"] = sorted([*record["points"], point], key=lambda p: -p["remaining"])
    return point


# -- reporting -----------------------------------------------------------------------------------------


def format_prune_at_init(record: dict[str, Any]) -> str:
    """Two tables: each method's (and the run's arms') test accuracy at early stop per sparsity, then the percent
    of each layer every method keeps."""
    methods = [m for m in METHODS if any(m in p["methods"] for p in record["points"])]
    run_rounds = {r["round"]: r for r in (record["run"] or {}).get("rounds", [])}
    run_arms = [arm for arm in RUN_ARMS if any(arm in r["arms"] for i, r in run_rounds.items() if i > 0)]
    columns = [*methods, *(f"run {arm}" for arm in run_arms)]
    lines = [f"pruning at initialization ({record['config']['model']} on {record['config']['dataset']}, "
             f"{record['config']['train']['iterations']:,} iterations): test accuracy at early stop (iteration)"]
    if 0 in run_rounds:
        lines.append(f"dense network: {_cell(run_rounds[0]['arms']['ticket'])}")
    lines.append("  ".join([f"{'weights':>8}", *(f"{c:>19}" for c in columns)]))
    for point in record["points"]:
        rnd = run_rounds.get(point["round"], {"arms": {}})
        cells = [_cell(point["methods"][m]) if m in point["methods"] else "-" for m in methods]
        cells += [_cell(rnd["arms"][arm]) if arm in rnd["arms"] else "-" for arm in run_arms]
        lines.append("  ".join([f"{point['percent_remaining']:>7.1f}%", *(f"{c:>19}" for c in cells)]))
    names = next((list(m["layers"]) for p in record["points"] for m in p["methods"].values()), [])
    if names:
        lines.append("")
        lines.append("percent of each layer's weights kept")
        width = max(len("method"), *(len(m) for m in methods))
        lines.append("  ".join([f"{'weights':>8}", f"{'method':>{width}}", *(f"{n:>8}" for n in names)]))
        for point in record["points"]:
            for method in methods:
                if method in point["methods"]:
                    layers = point["methods"][method]["layers"]
                    lines.append("  ".join([f"{point['percent_remaining']:>7.1f}%", f"{method:>{width}}",
                                            *(f"{layers[n]:>7.2f}%" for n in names)]))
    return "\n".join(lines)


def _cell(metrics: dict[str, Any]) -> str:
    return f"{100 * metrics['test_accuracy_at_early_stop']:.2f}% ({metrics['early_stop_iteration']:,})"


METHOD_STYLE = {
    "snip": {"label": "SNIP", "color": "#7b3294", "linestyle": "-.", "marker": "D"},
    "grasp": {"label": "GraSP", "color": "#8c6d1f", "linestyle": "-.", "marker": "v"},
    "synflow": {"label": "SynFlow", "color": "#c51b7d", "linestyle": "-.", "marker": "P"},
    "random": {"label": "random (ticket's layer counts)", "color": "#404040", "linestyle": "-.", "marker": "X"},
}
METHOD_STYLE.update({  # a shuffled method: its method's colour, dotted, hollow markers
    f"{m}{SHUFFLED}": {**METHOD_STYLE[m], "linestyle": ":", "markerfacecolor": "white",
                       "label": f"{METHOD_STYLE[m]['label']}, shuffled in each layer"}
    for m in ("snip", "grasp", "synflow")
})


def plot_prune_at_init(record: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Test accuracy (at early stop) against the percent of weights remaining: one curve per method, beside the
    run's ticket and controls (every round of the run) and its dense network as a dashed line; written as
    ``FIGURE`` .png and .pdf into ``out_dir``."""
    import matplotlib.pyplot as plt

    from minilottery.lab.plot_data import arm_series, dense_value
    from minilottery.lab.plots import ARM_STYLE, RC, percent_x_axis, save_figure

    key = "test_accuracy_at_early_stop"
    percents = [p["percent_remaining"] for p in record["points"]]
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(7.5, 5))
        if record["run"] is not None:
            summary = {"rounds": record["run"]["rounds"]}
            for arm in RUN_ARMS:
                points = [(x, y) for x, y in zip(*arm_series(summary, arm, key)) if 0 < x < 100]
                if points:
                    xs, ys = zip(*points)
                    label = f"IMP run: {ARM_STYLE[arm]['label']}"
                    ax.plot(xs, [100 * y for y in ys], **{**ARM_STYLE[arm], "label": label})
                    percents.extend(xs)
            dense = dense_value(summary, key)
            if dense is not None:
                ax.axhline(100 * dense, color="0.35", linestyle=(0, (6, 4)), linewidth=1.5, label="dense network")
        for method, style in METHOD_STYLE.items():
            points = [(p["percent_remaining"], 100 * p["methods"][method][key]) for p in record["points"]
                      if method in p["methods"]]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, **style)
        percent_x_axis(ax, percents or [100.0])  # as the IMP figures: sparser to the right
        ax.set_ylabel("test accuracy at early stop (%)")
        ax.set_title(f"Pruning at initialization ({record['config']['model']} on {record['config']['dataset']})")
        ax.legend(fontsize=10)
        fig.tight_layout()
        paths = save_figure(fig, out_dir, FIGURE)
        plt.close(fig)
    return paths


__all__ = ["DEFAULT_METHODS", "EXAMPLES", "FIGURE", "GRASP_STEP", "GRASP_TEMPERATURE", "METHODS", "RECORD_FILE",
           "SHUFFLED", "SYNFLOW_ROUNDS", "Scorer", "Target", "format_prune_at_init", "grasp_scores",
           "hessian_gradient_product", "loss_gradients", "masks_from_scores", "plot_prune_at_init",
           "run_prune_at_init", "snip_scores", "synflow_masks", "synflow_scores", "targets_from_percents",
           "targets_from_run"]
