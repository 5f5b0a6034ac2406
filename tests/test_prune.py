"""Magnitude pruning: exact counts per layer, the paper's rates, ties, global and random pruning."""

from __future__ import annotations

import numpy as np
import pytest

from minilottery import backend
from minilottery.models import build_model, weight_names
from minilottery.prune import (
    check_nested,
    default_rates,
    full_masks,
    global_magnitude_prune,
    keep_highest,
    keep_highest_global,
    magnitude_prune,
    masked_weights,
    one_shot_rates,
    prune_count,
    prune_layer,
    random_prune,
    sparsity,
)


def lenet_weights(seed=0):
    model = build_model("lenet_300_100", seed=seed)
    state = model.state_dict()
    return model, {name: state[name] for name in weight_names(model)}


@pytest.mark.parametrize("rate, alive, expected", [
    (0.2, 235200, 47040), (0.1, 1000, 100), (0.1, 25, 2),  # 2.5 rounds to the even 2 (Python's round)
    (0.1, 35, 4), (0.3, 25, 8), (0.2, 7, 1), (0.2, 8, 2), (0.2, 2, 0), (0.5, 3, 2), (0.2, 0, 0),
])
def test_prune_count_is_round_of_rate_times_alive(rate, alive, expected):
    assert prune_count(rate, alive) == expected == round(rate * alive)


def test_prune_layer_removes_the_smallest_alive_magnitudes():
    w = np.array([[0.5, -0.1, 3.0], [-2.0, 0.05, 1.0]], dtype=np.float32)
    mask = np.array([[True, True, True], [True, False, True]])  # 0.05 is already pruned
    new = prune_layer(w, mask, 0.4)  # 5 alive -> round(2.0) = 2 go: |-0.1| and |0.5|
    assert new.tolist() == [[False, False, True], [True, False, True]]
    assert mask.sum() == 5  # the input mask is left as it was
    assert check_nested({"w": new}, {"w": mask})


def test_ties_are_broken_by_position():
    w = np.ones((4, 5), dtype=np.float32)
    w[3, 4] = 0.5  # the single smallest goes first, then the earliest of the equal ones
    new = prune_layer(w, np.ones((4, 5), dtype=bool), 0.2)  # 20 alive -> 4 go
    assert (~new).reshape(-1).nonzero()[0].tolist() == [0, 1, 2, 19]
    again = prune_layer(w, np.ones((4, 5), dtype=bool), 0.2)
    assert np.array_equal(new, again)


def test_prune_layer_off_by_one_counts():
    rng = np.random.default_rng(1)
    for alive, rate in [(25, 0.1), (35, 0.1), (7, 0.2), (3, 0.5), (1, 0.2)]:
        w = rng.standard_normal(40).astype(np.float32)
        mask = np.zeros(40, dtype=bool)
        mask[rng.choice(40, alive, replace=False)] = True
        new = prune_layer(w, mask, rate)
        assert mask.sum() - new.sum() == round(rate * alive)
        assert not np.any(new & ~mask)  # nested


def test_default_rates_follow_the_paper():
    lenet, _ = lenet_weights()
    assert default_rates("lenet_300_100", lenet) == {"1.W": 0.2, "3.W": 0.2, "5.W": 0.1}
    assert default_rates("lenet_300_100", lenet, 0.4) == {"1.W": 0.4, "3.W": 0.4, "5.W": 0.2}
    assert default_rates("lenet_300_100", lenet, 0.4, output_rate=0.3)["5.W"] == 0.3
    for name, conv in [("conv2", 0.1), ("conv4", 0.1), ("conv6", 0.15)]:
        model = build_model(name, input_shape=(3, 8, 8))  # small inputs: the rates depend on the layer kinds only
        rates = default_rates(name, model)
        names = weight_names(model)
        assert [rates[n] for n in names] == [conv] * (len(names) - 3) + [0.2, 0.2, 0.1]
        assert all(not n.endswith(".b") for n in rates)  # biases are never pruned
    assert set(default_rates("conv6", build_model("conv6", (3, 8, 8)), conv_rate=0.3).values()) == {0.3, 0.2, 0.1}


def test_layerwise_rounds_exact_counts_and_nested():
    model, weights = lenet_weights()
    rates = default_rates("lenet_300_100", model)
    masks = full_masks(weights)
    expected = {name: w.size for name, w in weights.items()}
    rng = np.random.default_rng(0)
    for _ in range(4):
        new = magnitude_prune(weights, masks, rates)
        for name in weights:
            expected[name] -= round(rates[name] * expected[name])
            assert int(new[name].sum()) == expected[name]
        assert check_nested(new, masks)
        masks = new
        weights = {n: rng.standard_normal(w.shape).astype(np.float32) for n, w in weights.items()}  # "retrained"
    assert expected["1.W"] == 96338 and expected["5.W"] == 656  # 235200 * 0.8^4 and 1000 * 0.9^4, rounded per round
    s = sparsity(masks)
    assert s["layers"]["1.W"] == {"remaining": 96338, "total": 235200, "percent": 100.0 * 96338 / 235200}
    assert s["remaining"] == sum(expected.values()) and s["total"] == 266200
    assert s["percent"] == pytest.approx(100.0 * s["remaining"] / 266200)


def test_global_pruning_one_threshold_over_all_layers():
    _, weights = lenet_weights()
    masks = full_masks(weights)
    masks["3.W"][:10] = False
    new = global_magnitude_prune(weights, masks, 0.2)
    alive = sum(int(m.sum()) for m in masks.values())
    assert alive - sum(int(m.sum()) for m in new.values()) == round(0.2 * alive)
    assert check_nested(new, masks)
    kept = np.concatenate([np.abs(weights[n][new[n]]) for n in weights])
    removed = np.concatenate([np.abs(weights[n][masks[n] & ~new[n]]) for n in weights])
    assert removed.max() <= kept.min()
    # layers with smaller weights (the wide first layer has the smallest Glorot scale) lose more
    assert sparsity(new)["layers"]["1.W"]["percent"] < sparsity(new)["layers"]["5.W"]["percent"]


def test_random_prune_keeps_per_layer_counts():
    model, weights = lenet_weights()
    masks = magnitude_prune(weights, full_masks(weights), default_rates("lenet_300_100", model))
    a = random_prune(masks, np.random.default_rng(3))
    b = random_prune(masks, np.random.default_rng(3))
    for name in masks:
        assert a[name].dtype == bool and a[name].shape == masks[name].shape
        assert a[name].sum() == masks[name].sum()
        assert np.array_equal(a[name], b[name])  # seeded
    assert not np.array_equal(a["1.W"], masks["1.W"])


def test_one_shot_rates_reach_the_target():
    model, weights = lenet_weights()
    rates = default_rates("lenet_300_100", model)
    sizes = {n: w.size for n, w in weights.items()}
    for target in (50.0, 7.0, 1.5):
        layer_rates = one_shot_rates(rates, sizes, target_percent=target)
        masks = magnitude_prune(weights, full_masks(weights), layer_rates)
        assert sparsity(masks)["percent"] == pytest.approx(target, abs=0.01)
        # the output layer keeps more, as it would after the same number of IMP rounds
        assert sparsity(masks)["layers"]["5.W"]["percent"] > sparsity(masks)["layers"]["1.W"]["percent"]
    by_rounds = one_shot_rates(rates, sizes, rounds=3)
    assert by_rounds["1.W"] == pytest.approx(1 - 0.8 ** 3) and by_rounds["5.W"] == pytest.approx(1 - 0.9 ** 3)
    with pytest.raises(ValueError, match="target-percent"):
        one_shot_rates(rates, sizes, target_percent=100.0)


def test_masked_weights_zero_the_pruned_and_copy_biases():
    model = build_model("lenet_300_100")
    state = model.state_dict()
    masks = magnitude_prune(state, full_masks({n: state[n] for n in weight_names(model)}),
                            default_rates("lenet_300_100", model))
    out = masked_weights(state, masks)
    assert np.array_equal(out["1.W"], state["1.W"] * masks["1.W"]) and out["1.W"].dtype == np.float32
    assert np.array_equal(out["1.b"], state["1.b"]) and out["1.b"] is not state["1.b"]


def test_pruning_reads_device_arrays(device):
    if device == "cpu":
        pytest.skip("the CPU is the reference: comparing it with itself proves nothing")
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 7)).astype(np.float32)
    mask = np.ones((6, 7), dtype=bool)
    reference = prune_layer(w, mask, 0.2)  # on the CPU
    from_device = prune_layer(backend.to_device(w, device), backend.to_device(mask, device), 0.2)
    assert isinstance(from_device, np.ndarray) and np.array_equal(from_device, reference)


def test_every_pruning_helper_reads_device_arrays(device):
    """Each helper that takes arrays gives, from device weights, masks and models, what it gives from host ones:
    host bool masks (host weights for ``masked_weights``), equal to the CPU's."""
    if device == "cpu":
        pytest.skip("the CPU is the reference: comparing it with itself proves nothing")
    model = build_model("conv2", input_shape=(3, 8, 8))  # conv, dense and output weights; small dense layers
    state = model.state_dict()
    names = weight_names(model)
    rng = np.random.default_rng(0)
    masks = {name: rng.random(state[name].shape) > 0.3 for name in names}  # alive weights of a round of IMP
    rates = default_rates("conv2", model)

    def calls(model, state, masks):
        """Every helper once; ``state`` and ``masks`` hold arrays of one device, ``model`` lives there too."""
        weights = {name: state[name] for name in names}
        return {
            "default_rates": default_rates("conv2", model),
            "full_masks": full_masks(weights),
            "prune_layer": {"0.W": prune_layer(weights["0.W"], masks["0.W"], 0.1)},
            "magnitude_prune": magnitude_prune(weights, masks, rates),
            "magnitude_prune, output layer kept whole": magnitude_prune(weights, masks, dict(list(rates.items())[:-1])),
            "global_magnitude_prune": global_magnitude_prune(weights, masks, 0.2),
            "random_prune": random_prune(masks, np.random.default_rng(3)),
            "masked_weights": masked_weights(state, masks),
            "sparsity": sparsity(masks),
        }

    on_cpu = calls(model, state, masks)
    dev_state = {name: backend.to_device(value, device) for name, value in state.items()}
    dev_masks = {name: backend.to_device(mask, device) for name, mask in masks.items()}
    on_dev = calls(model.to(device), dev_state, dev_masks)
    assert on_dev.keys() == on_cpu.keys()
    for helper in ("default_rates", "sparsity"):
        assert on_dev[helper] == on_cpu[helper], helper
    for helper in sorted(on_cpu.keys() - {"default_rates", "sparsity"}):  # name -> array dicts
        assert on_dev[helper].keys() == on_cpu[helper].keys(), helper
        for name, expected in on_cpu[helper].items():
            got = on_dev[helper][name]
            assert type(got) is np.ndarray and got.dtype == expected.dtype, (helper, name, type(got), got.dtype)
            assert np.array_equal(got, expected), (helper, name)
    # the masks of a round are nested in the masks before it, and not the other way round, read from the device
    new = {name: backend.to_device(mask, device) for name, mask in on_dev["magnitude_prune"].items()}
    assert check_nested(new, dev_masks) and not check_nested(dev_masks, new)


def test_keep_highest_keeps_exact_counts_of_the_highest_scores_ties_by_position():
    scores = {"a": np.array([[3.0, 1.0, 2.0], [2.0, 5.0, -np.inf]]), "b": np.array([0.5, 0.5, 0.5, 0.1])}
    masks = keep_highest(scores, {"a": 3, "b": 2})
    # 5, 3, then the first of the two 2.0s (position 2): the second 2.0 and -inf stay out
    np.testing.assert_array_equal(masks["a"], [[True, False, True], [False, True, False]])
    np.testing.assert_array_equal(masks["b"], [True, True, False, False])  # equal scores: the earlier positions
    assert keep_highest(scores, {"a": 6})["a"].all() and not keep_highest(scores, {"a": 0})["a"].any()
    with pytest.raises(ValueError, match="cannot keep 7 of the 6 weights of a"):
        keep_highest(scores, {"a": 7})


def test_keep_highest_global_ranks_all_layers_together():
    scores = {"a": np.array([[0.9, 0.1], [0.3, 0.2]]), "b": np.array([0.8, 0.3, 0.05])}
    masks = keep_highest_global(scores, 4)
    np.testing.assert_array_equal(masks["a"], [[True, False], [True, False]])  # 0.9 and a's 0.3 (the earlier 0.3)
    np.testing.assert_array_equal(masks["b"], [True, True, False])  # 0.8, then b's 0.3 ties a's: a came first
    assert sum(int(m.sum()) for m in masks.values()) == 4
