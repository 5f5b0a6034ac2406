"""Pruning at initialization (lab/prune_at_init.py): SNIP's, GraSP's and SynFlow's scores against values computed
here by hand or by plain finite differences, SynFlow's conservation law and schedule, exact counts, the run's θ0,
and the command end to end with its one-line refusals."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from minilottery.lab import prune_at_init as pai
from minilottery.lab import runs
from minilottery.lab.cli import build_parser, main
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.layers import Dense, ReLU, Sequential
from minilottery.models import build_model
from minilottery.prune import keep_highest_global, sparsity
from tests.helpers import small_config, synthetic_data, synthetic_loader

DATA = synthetic_data()


# -- a tiny network and its loss, written out here independently of the code under test ------------------------------


def tiny_network(seed: int = 0) -> Sequential:
    """3 inputs -> 4 ReLU units -> 3 logits, float64, with nonzero biases."""
    rng = np.random.default_rng(seed)
    model = Sequential(Dense(3, 4, rng=rng, dtype=np.float64), ReLU(), Dense(4, 3, rng=rng, dtype=np.float64))
    model.set_parameter("0.b", rng.normal(size=4))
    model.set_parameter("2.b", rng.normal(size=3))
    return model


def tiny_batch(model: Sequential, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(5, 3)), rng.integers(0, 3, 5)
    pre = x @ model.parameters()["0.W"].T + model.parameters()["0.b"]  # (5, 4)
    assert np.abs(pre).min() > 0.1  # no ReLU input near its kink, where finite differences break down
    return x, y


def tiny_loss(theta: np.ndarray, model: Sequential, x: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """Mean cross-entropy of softmax(f(x) / T), the weights taken from the flat vector ``theta`` (0.W then 2.W)."""
    p = model.parameters()
    w0, w2 = theta[:12].reshape(4, 3), theta[12:].reshape(3, 4)  # (12,) -> (4, 3), (12,) -> (3, 4)
    z = (np.maximum(x @ w0.T + p["0.b"], 0) @ w2.T + p["2.b"]) / temperature  # (5, 3)
    log_p = z - z.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def flat_weights(model: Sequential) -> np.ndarray:
    return np.concatenate([model.parameters()["0.W"].ravel(), model.parameters()["2.W"].ravel()])  # (24,)


def numeric_gradient(f, theta: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        grad[i] = (f(theta + e) - f(theta - e)) / (2 * h)
    return grad


def numeric_hessian(f, theta: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Every second derivative by the four-point central difference."""
    n = theta.size
    hessian = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            ei, ej = np.zeros(n), np.zeros(n)
            ei[i], ej[j] = h, h
            hessian[i, j] = (f(theta + ei + ej) - f(theta + ei - ej) - f(theta - ei + ej) + f(theta - ei - ej)) / (
                4 * h * h)
    return hessian


def as_flat(scores: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([scores["0.W"].ravel(), scores["2.W"].ravel()])  # (24,)


# -- the scores ------------------------------------------------------------------------------------------------------


def test_snip_scores_are_the_connection_sensitivity_from_plain_finite_differences():
    model = tiny_network()
    x, y = tiny_batch(model)
    theta = flat_weights(model)
    g = numeric_gradient(lambda t: tiny_loss(t, model, x, y, 1.0), theta)
    np.testing.assert_allclose(as_flat(pai.snip_scores(model, x, y)), np.abs(g * theta), rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_grasp_scores_are_minus_theta_times_the_hessian_gradient_product(temperature):
    model = tiny_network()
    x, y = tiny_batch(model)
    theta = flat_weights(model)

    def loss(t):
        return tiny_loss(t, model, x, y, temperature)

    hg = numeric_hessian(loss, theta) @ numeric_gradient(loss, theta)
    scores = as_flat(pai.grasp_scores(model, x, y, temperature=temperature))
    np.testing.assert_allclose(scores, -theta * hg, rtol=1e-4, atol=1e-8)
    np.testing.assert_array_equal(flat_weights(model), theta)  # the weights are restored exactly


def test_grasp_shrinks_its_step_until_no_relu_flips_inside_it():
    model = tiny_network()
    x, y = tiny_batch(model)
    theta = flat_weights(model)

    def loss(t):
        return tiny_loss(t, model, x, y, 1.0)

    hg = numeric_hessian(loss, theta) @ numeric_gradient(loss, theta)
    # a step of length 1 flips ReLUs: alone it would be far off; the agreement check shrinks it
    _, coarse = pai.hessian_gradient_product(model, x, y, temperature=1.0, step=1.0)
    np.testing.assert_allclose(as_flat(coarse), hg, rtol=1e-4, atol=1e-8)


def test_grasp_keeps_the_lowest_scores_and_snip_the_highest():
    scores = {"a": np.array([3.0, -1.0, 0.5]), "b": np.array([[-2.0, 4.0]])}
    grasp = pai.masks_from_scores("grasp", scores, 2)  # the paper removes the highest -θ ⊙ Hg
    assert grasp["a"].tolist() == [False, True, False] and grasp["b"].tolist() == [[True, False]]
    snip = pai.masks_from_scores("snip", scores, 2)
    assert snip["a"].tolist() == [True, False, False] and snip["b"].tolist() == [[False, True]]


def test_synflow_scores_match_the_path_sums_by_hand():
    model = tiny_network()
    weights = model.state_dict()  # nonzero biases: SynFlow turns them off
    masks = {"0.W": np.ones((4, 3), bool), "2.W": np.ones((3, 4), bool)}
    masks["0.W"][1, 2] = False
    scores = pai.synflow_scores(model, weights, masks, (3,))
    a0 = np.abs(weights["0.W"]) * masks["0.W"]  # (4, 3)
    a2 = np.abs(weights["2.W"])  # (3, 4)
    # R = 1ᵀ a2 a0 1: dR/d a0[i, j] = sum_k a2[k, i]; dR/d a2[k, i] = sum_j a0[i, j]
    np.testing.assert_allclose(scores["0.W"], a0 * a2.sum(axis=0)[:, None], rtol=1e-12)
    np.testing.assert_allclose(scores["2.W"], a2 * a0.sum(axis=1)[None, :], rtol=1e-12)
    assert scores["0.W"][1, 2] == 0.0


def test_synflow_conserves_the_flow_layer_by_layer():
    # Tanaka et al., Theorem 1: in a chain of dense layers the scores of every layer sum to R
    rng = np.random.default_rng(3)
    model = Sequential(Dense(6, 5, rng=rng, dtype=np.float64), ReLU(), Dense(5, 4, rng=rng, dtype=np.float64),
                       ReLU(), Dense(4, 2, rng=rng, dtype=np.float64))
    weights = model.state_dict()
    masks = {name: rng.random(weights[name].shape) < 0.7 for name in ("0.W", "2.W", "4.W")}
    scores = pai.synflow_scores(model, weights, masks, (6,))
    r = np.ones(6)
    for name in ("0.W", "2.W", "4.W"):
        r = (np.abs(weights[name]) * masks[name]) @ r  # (out, in) @ (in,) -> (out,)
    sums = [scores[name].sum() for name in ("0.W", "2.W", "4.W")]
    np.testing.assert_allclose(sums, [r.sum()] * 3, rtol=1e-12)


def test_synflow_prunes_on_the_exponential_schedule_with_nested_masks(monkeypatch):
    model = build_model("lenet_300_100", seed=0, dtype=np.float64)
    weights = model.state_dict()
    kept, chosen = [], []

    def recorded(scores, count):
        kept.append(count)
        chosen.append(keep_highest_global(scores, count))
        return chosen[-1]

    monkeypatch.setattr(pai, "keep_highest_global", recorded)
    total, count = 266_200, 2_662
    masks = pai.synflow_masks(model, weights, count, (1, 28, 28), rounds=4)
    assert kept == [round(total * 0.01 ** (k / 4)) for k in (1, 2, 3)] + [count]
    assert sparsity(masks)["remaining"] == count
    for outer, inner in zip(chosen, chosen[1:]):  # a pruned weight never comes back
        assert all(not np.any(inner[n] & ~outer[n]) for n in inner)


# -- counts, start weights and the run ------------------------------------------------------------------------------


def test_every_method_keeps_exactly_the_requested_count():
    config = small_config()
    model = build_model(config.model, seed=config.seed)
    scorer = pai.Scorer(config, (1, 28, 28), model.state_dict(), DATA, examples=30, synflow_rounds=3)
    targets = pai.targets_from_percents(config, model, [50.0, 3.6])
    assert [round(100 * t.remaining / 266_200, 1) for t in targets] == [50.0, 3.6]
    for target in targets:
        for method in pai.METHODS:
            masks = scorer.masks(method, target)
            assert sparsity(masks)["remaining"] == target.remaining, method
        random_counts = {name: int(mask.sum()) for name, mask in scorer.masks("random", target).items()}
        assert random_counts == target.counts  # IMP's per-layer proportions


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("imp") / "run"
    run_imp_in_folder(small_config(rounds=2, controls=("random_prune",)), DATA, out, progress=False)
    return out


def spy_on_training(monkeypatch) -> list[tuple]:
    """Records (desc, start, masks) of every network trained, and trains it."""
    calls = []
    train_arm = pai.train_arm

    def recorded(config, data, start, masks, device, progress, desc):
        calls.append((desc, start, masks))
        return train_arm(config, data, start, masks, device, progress, desc)

    monkeypatch.setattr(pai, "train_arm", recorded)
    return calls


@pytest.mark.filterwarnings("ignore::minilottery.training.ChanceLevelWarning")  # 12 iterations on synthetic data
def test_masks_from_a_run_are_chosen_and_trained_at_its_theta0(run_dir, tmp_path, monkeypatch):
    calls = spy_on_training(monkeypatch)
    record = pai.run_prune_at_init(DATA, tmp_path / "p", run=run_dir, percents=[64.0], examples=30, synflow_rounds=3,
                                   progress=False, log=None)
    theta0 = runs.load_npz(run_dir / "theta0.npz")
    ticket = runs.load_npz(run_dir / "round_002" / "masks.npz")
    trained = {desc.split()[-1]: (start, masks) for desc, start, masks in calls}
    assert sorted(trained) == sorted(pai.DEFAULT_METHODS)
    for method, (start, masks) in trained.items():
        assert all(np.array_equal(start[n], theta0[n]) for n in theta0), method
        assert sparsity(masks)["remaining"] == sparsity(ticket)["remaining"], method
    assert sparsity(trained["random"][1])["layers"] == sparsity(ticket)["layers"]  # the ticket's per-layer counts
    # SNIP's masks are those of θ0 read from the run's file, not of another start
    target = pai.Target({n: int(m.sum()) for n, m in ticket.items()})
    config = small_config(rounds=2, controls=("random_prune",))
    at_theta0 = pai.Scorer(config, (1, 28, 28), theta0, DATA, examples=30).masks("snip", target)
    assert all(np.array_equal(trained["snip"][1][n], at_theta0[n]) for n in ticket)
    other = build_model("lenet_300_100", seed=1).state_dict()
    elsewhere = pai.Scorer(config, (1, 28, 28), other, DATA, examples=30).masks("snip", target)
    assert not np.array_equal(elsewhere["1.W"], at_theta0["1.W"])

    [point] = record["points"]
    assert point["round"] == 2 and point["percent_requested"] == 64.0
    assert point["percent_remaining"] == runs.completed_rounds(run_dir)[2]["percent_remaining"]
    assert set(point["methods"]) == set(pai.DEFAULT_METHODS)
    assert record["run"]["rounds"][2]["arms"].keys() == {"ticket", "random_prune"}
    assert runs.read_json(tmp_path / "p" / pai.RECORD_FILE) == record

    calls.clear()  # run again: everything is there, nothing is trained
    assert pai.run_prune_at_init(DATA, tmp_path / "p", run=run_dir, percents=[64.0], examples=30, synflow_rounds=3,
                                 progress=False, log=None) == record
    assert calls == []
    text = pai.format_prune_at_init(record)
    assert "run ticket" in text and "synflow" in text and "percent of each layer's weights kept" in text
    paths = pai.plot_prune_at_init(record, tmp_path / "figures")
    assert sorted(p.name for p in paths) == [f"{pai.FIGURE}.pdf", f"{pai.FIGURE}.png"]


# -- the command ----------------------------------------------------------------------------------------------------


@pytest.fixture
def synthetic(monkeypatch):
    import minilottery.lab.commands.imp as imp_command

    monkeypatch.setattr(imp_command, "load_data", synthetic_loader)


def test_the_command_runs_with_a_run_and_without_one(run_dir, tmp_path, synthetic, capsys):
    out = tmp_path / "with-run"
    code = main(["prune-at-init", "--run", str(run_dir), "--percent", "64", "--method", "snip,random",
                 "--examples", "30", "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0 and "run ticket" in printed and "figure:" in printed
    record = json.loads((out / pai.RECORD_FILE).read_text())
    assert set(record["points"][0]["methods"]) == {"snip", "random"}
    assert (out / "figures" / f"{pai.FIGURE}.png").is_file()

    out = tmp_path / "alone"
    code = main(["prune-at-init", "--percent", "50", "--iterations", "12", "--eval-every", "4", "--method",
                 "grasp,synflow", "--synflow-rounds", "2", "--examples", "30", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    record = json.loads((out / pai.RECORD_FILE).read_text())
    assert record["run"] is None and record["config"]["train"]["iterations"] == 12
    assert round(record["points"][0]["percent_remaining"], 1) == 50.0


@pytest.mark.parametrize("argv, message", [
    ([], "give --run RUN .* or --percent"),
    (["--run", "RUN", "--iterations", "10"], "--iterations: --run trains with the run's own settings"),
    (["--run", "RUN", "--percent", "1"], "--percent 1: not reached: the run's rounds end at 64.1% in .* choose"),
    (["--run", "NOT_A_RUN"], "is not a run folder of `minilottery imp`"),
    (["--percent", "50", "--examples", "0"], "--examples must be at least 1, got 0"),
])
def test_errors_are_one_line(run_dir, tmp_path, synthetic, capsys, argv, message):
    argv = [str(run_dir) if a == "RUN" else str(tmp_path) if a == "NOT_A_RUN" else a for a in argv]
    code = main(["prune-at-init", *argv, "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert re.search(message, err), err
    assert not (tmp_path / "o" / pai.RECORD_FILE).exists()


def test_every_option_shows_its_default():
    parser = build_parser()
    command = parser._subparsers._group_actions[0].choices["prune-at-init"]
    for action in command._actions:
        if action.required or action.nargs == 0 or action.help is None:  # --out, and flags such as --no-progress
            continue
        assert "default" in action.help, action.option_strings


def test_shuffled_methods_keep_each_layers_count_at_new_positions():
    config = small_config()
    model = build_model(config.model, seed=config.seed)
    scorer = pai.Scorer(config, (1, 28, 28), model.state_dict(), DATA, examples=30, synflow_rounds=3)
    [target] = pai.targets_from_percents(config, model, [10.0])
    for method in ("snip", "grasp", "synflow"):
        own, shuffled = scorer.masks(method, target), scorer.masks(f"{method}{pai.SHUFFLED}", target)
        assert sparsity(shuffled)["layers"] == sparsity(own)["layers"], method  # the method's per-layer counts
        kept_both = sum(int((own[n] & shuffled[n]).sum()) for n in own)
        assert kept_both < 0.5 * sparsity(own)["remaining"], method  # mostly other positions (chance: ~10-50%)
        again = scorer.masks(f"{method}{pai.SHUFFLED}", target)
        assert all(np.array_equal(again[n], shuffled[n]) for n in own), method  # seeded: the same every time
