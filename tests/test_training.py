"""Training: reproducibility, data order, early stopping, non-finite losses, config errors, devices, the CLI,
and the paper's LeNet-300-100 reaching 96% test accuracy on MNIST within 1,500 iterations.

Most tests train LeNet-300-100 on a small synthetic set. The MNIST tests use the ``mnist_data``
fixture: the real files from ``MINILOTTERY_DATA`` (never downloaded), skipped when absent except under CI.
"""

import json
import re

import numpy as np
import pytest

import minilottery.training as train_module
from minilottery.backend import to_device, to_numpy
from minilottery.data import Dataset
from minilottery.lab.cli import main
from minilottery.loss import softmax_cross_entropy
from minilottery.models import build_model
from minilottery.optim import make_optimizer
from minilottery.training import (
    NonFiniteLossError,
    TrainConfig,
    check_data,
    evaluate,
    evaluation_batch,
    save_metrics,
    train,
    train_step,
)
from tests.helpers import on_device

# These trainings are a few iterations long on purpose, so most end at chance level; the warning that says
# so is tested in test_errors.py.
pytestmark = pytest.mark.filterwarnings("ignore::minilottery.training.ChanceLevelWarning")


def synthetic(n_train=250, n_val=60, n_test=60, seed=0) -> Dataset:
    """Random 1x28x28 images labelled by a fixed linear rule (learnable); pixel (0, 0) holds the example's index."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val + n_test
    x = rng.random((n, 1, 28, 28), dtype=np.float32)
    y = ((x.reshape(n, -1) - 0.5) @ rng.standard_normal((784, 10))).argmax(axis=1).astype(np.int64)  # (N, 784) -> (N,)
    x[:, 0, 0, 0] = np.arange(n)  # so a batch tells which examples it holds
    a, b = n_train, n_train + n_val
    return Dataset(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], name="synthetic")


def run(iterations=30, eval_every=10, data=None, model_seed=0, device=None, **config):
    model = build_model("lenet_300_100", seed=model_seed)
    result = train(model, data or synthetic(), TrainConfig(iterations, eval_every=eval_every, **config),
                   device=device, progress=False)
    return model, result


# -- reproducibility and data order -------------------------------------------------------------------


def test_same_seed_bitwise_identical():
    model_a, a = run(seed=1)
    model_b, b = run(seed=1)
    for name, value in model_a.state_dict().items():
        np.testing.assert_array_equal(value, model_b.state_dict()[name])
    assert a.history == b.history
    assert a.history["iteration"] == [10, 20, 30]


def test_different_data_seed_different_run():
    model_a, a = run(seed=1)
    model_b, b = run(seed=2)
    assert not np.array_equal(model_a.state_dict()["1.W"], model_b.state_dict()["1.W"])
    assert a.history["train_loss"] != b.history["train_loss"]


def record_batches(monkeypatch, **kwargs):
    """Trains with a train_step that records each batch's example indices (pixel (0, 0) of every image)."""
    batches = []

    def spy(model, optimizer, x, y):
        batches.append(to_numpy(x)[:, 0, 0, 0].astype(int))
        return train_step(model, optimizer, x, y)

    monkeypatch.setattr(train_module, "train_step", spy)
    run(**kwargs)
    return batches


def test_data_order_depends_only_on_seed_and_drops_partial_batch(monkeypatch):
    first = record_batches(monkeypatch, iterations=12, eval_every=12, seed=5)
    again = record_batches(monkeypatch, iterations=12, eval_every=12, seed=5, model_seed=9, lr=1e-4)
    other = record_batches(monkeypatch, iterations=12, eval_every=12, seed=6)
    assert all(len(b) == 60 for b in first)
    assert all(np.array_equal(p, q) for p, q in zip(first, again)) and len(first) == len(again) == 12
    assert not all(np.array_equal(p, q) for p, q in zip(first, other))
    # 250 examples, batch 60: 4 batches an epoch, each epoch 240 distinct examples, a new order every epoch
    epochs = [np.concatenate(first[i:i + 4]) for i in (0, 4, 8)]
    assert all(len(set(e)) == 240 and e.max() < 250 for e in epochs)
    assert not np.array_equal(epochs[0], epochs[1])
    # the order is np.random.default_rng(seed).permutation(n_train), epoch after epoch
    rng = np.random.default_rng(5)
    for e in epochs:
        np.testing.assert_array_equal(e, rng.permutation(250)[:240])


# -- what a run records -------------------------------------------------------------------------------


def test_early_stop_is_argmin_of_validation_loss():
    _, result = run(iterations=40, eval_every=5, lr=3e-3)
    h = result.history
    assert h["iteration"] == list(range(5, 41, 5))
    best = int(np.argmin(h["val_loss"]))
    assert result.early_stop_iteration == h["iteration"][best]
    assert result.test_accuracy_at_early_stop == h["test_accuracy"][best]
    assert result.final_test_accuracy == h["test_accuracy"][-1]
    assert all(0.0 <= a <= 1.0 for a in h["val_accuracy"] + h["test_accuracy"])
    assert h["train_loss"][-1] < h["train_loss"][0]  # it learns
    json.dumps(result.to_dict())  # JSON-able


def record_losses(monkeypatch):
    """Wraps ``train_step`` so that every step's loss is appended, as a float, to the list returned."""
    losses = []

    def spy(model, optimizer, x, y):
        loss = train_step(model, optimizer, x, y)
        losses.append(float(loss))
        return loss

    monkeypatch.setattr(train_module, "train_step", spy)
    return losses


def test_last_iteration_always_evaluated_and_train_loss_is_interval_mean(monkeypatch):
    losses = record_losses(monkeypatch)
    _, result = run(iterations=25, eval_every=10)
    assert result.history["iteration"] == [10, 20, 25]
    expected = [np.mean(losses[0:10]), np.mean(losses[10:20]), np.mean(losses[20:25])]
    np.testing.assert_allclose(result.history["train_loss"], expected, rtol=1e-6)


def test_evaluate_matches_direct_computation_and_restores_mode(device):
    data = synthetic()
    cpu_model = build_model("lenet_300_100")
    logits = cpu_model.forward(data.x_test)  # the direct computation, on the CPU
    expected_loss, _ = softmax_cross_entropy(logits, data.y_test)
    expected_acc = np.mean(logits.argmax(axis=1) == data.y_test)
    model = on_device(cpu_model, device)
    from_host = evaluate(model, data.x_test, data.y_test, batch_size=7)  # uneven batches; moved to the device
    from_device = evaluate(model, to_device(data.x_test, device), to_device(data.y_test, device), batch_size=7)
    for loss, acc in (from_host, from_device):
        assert isinstance(loss, float) and isinstance(acc, float)
        assert loss == pytest.approx(float(expected_loss), rel=1e-5)
        assert acc == pytest.approx(expected_acc)
    assert all(layer.training for layer in model.layers)


def test_evaluation_batch_from_the_memory_budget(device):
    lenet, conv = build_model("lenet_300_100"), build_model("conv2", input_shape=(1, 28, 28))
    budget, (low, high) = train_module.EVAL_BATCH_BYTES, train_module.EVAL_BATCH_BOUNDS
    # LeNet's largest array per example is its 784-pixel input; Conv-2's, its second convolution's im2col matrix
    assert evaluation_batch(lenet, (1, 28, 28)) == max(low, min(high, budget["cpu"] // (784 * 4)))
    assert evaluation_batch(conv, (1, 28, 28)) == max(low, min(high, budget["cpu"] // (3 * 3 * 64 * 24 * 24 * 4)))
    assert evaluation_batch(conv, (1, 28, 28)) == low < evaluation_batch(lenet, (1, 28, 28)) < high
    conv.train()
    evaluation_batch(conv, (1, 28, 28))
    assert all(layer.training for layer in conv.layers)  # the mode is restored
    on = on_device(lenet, device)
    assert evaluation_batch(on, (1, 28, 28)) == max(low, min(high, budget.get(device, budget["cpu"]) // (784 * 4)))


def test_evaluate_by_the_budget_equals_fixed_batches():
    data = synthetic()
    model = build_model("lenet_300_100")
    assert TrainConfig().eval_batch_size is None  # the budget is the default
    loss, accuracy = evaluate(model, data.x_test, data.y_test)
    fixed_loss, fixed_accuracy = evaluate(model, data.x_test, data.y_test, batch_size=7)
    assert accuracy == fixed_accuracy and loss == pytest.approx(fixed_loss, rel=1e-6)


def test_snapshots_are_host_copies_at_the_requested_iterations(device):
    model = build_model("lenet_300_100")
    theta0 = model.state_dict()
    result = train(model, synthetic(), TrainConfig(10, eval_every=10), device=device, snapshot_at=(0, 5),
                   progress=False)
    assert sorted(result.snapshots) == [0, 5]
    assert all(type(value) is np.ndarray for snapshot in result.snapshots.values() for value in snapshot.values())
    for name, value in theta0.items():
        np.testing.assert_array_equal(result.snapshots[0][name], value)
    short = build_model("lenet_300_100")
    train(short, synthetic(), TrainConfig(5, eval_every=5), device=device, progress=False)
    for name, value in short.state_dict().items():
        np.testing.assert_array_equal(result.snapshots[5][name], value)
    assert not np.array_equal(result.snapshots[5]["1.W"], model.state_dict()["1.W"])


def test_masked_weights_stay_zero():
    model = build_model("lenet_300_100")
    mask = (np.random.default_rng(0).random((300, 784)) < 0.2).astype(np.float32)
    model.set_masks({"1.W": mask})
    train(model, synthetic(), TrainConfig(10, eval_every=10), progress=False)
    w = model.state_dict()["1.W"]
    assert not w[mask == 0].any()  # pruned weights are exactly 0 (the optimizer keeps them there)
    assert (w != build_model("lenet_300_100").state_dict()["1.W"])[mask == 1].mean() > 0.9  # the rest learn


def test_progress_bar_shows_desc(capsys):
    train(build_model("lenet_300_100"), synthetic(), TrainConfig(4, eval_every=2), progress=True, desc="round 3 ticket")
    err = capsys.readouterr().err
    assert "round 3 ticket" in err and "val_acc" in err


def test_save_metrics_is_atomic_json(tmp_path):
    _, result = run(iterations=10, eval_every=5)
    path = save_metrics(result, tmp_path / "sub" / "metrics.json", config=TrainConfig(10))
    content = json.loads(path.read_text())
    assert content["config"]["iterations"] == 10 and content["history"]["iteration"] == [5, 10]
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.json"]  # no temporary file left


# -- errors -------------------------------------------------------------------------------------------


# The first bad step, 10, is neither an evaluation point nor first after one for eval_every 7 (window 8..14),
# last in its window for eval_every 10, and inside the single window of eval_every 30.
@pytest.mark.parametrize("eval_every", [1, 7, 10, 30])
@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_non_finite_loss_names_the_first_bad_iteration(monkeypatch, device, eval_every):
    """A nan planted in the batch of iteration 10 is reported at iteration 10, wherever the evaluations fall."""
    bad_iteration = 10
    calls = []

    def poisoned_step(model, optimizer, x, y):
        calls.append(len(calls) + 1)
        if calls[-1] == bad_iteration:  # a nan input: a nan loss now, nan weights (and losses) from then on
            x = x * np.float32(np.nan)
        return train_step(model, optimizer, x, y)

    monkeypatch.setattr(train_module, "train_step", poisoned_step)
    with pytest.raises(NonFiniteLossError, match=r"training loss became nan at iteration 10; lower --lr") as e:
        run(iterations=30, eval_every=eval_every, device=device)
    assert e.value.iteration == bad_iteration


@pytest.mark.parametrize("eval_every", [1, 7])
@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_learning_rate_blow_up_names_the_first_bad_iteration(monkeypatch, eval_every):
    """SGD at lr 1e12 diverges; the error names the first step whose own loss (recorded here) is not finite."""
    losses = record_losses(monkeypatch)
    with pytest.raises(NonFiniteLossError,
                       match=r"training loss became (nan|inf) at iteration \d+; lower --lr \(now 1e\+12\)") as e:
        run(iterations=30, eval_every=eval_every, optimizer="sgd", lr=1e12)
    first_bad = 1 + int(np.flatnonzero(~np.isfinite(losses))[0])
    assert 1 < first_bad and e.value.iteration == first_bad, losses


@pytest.mark.parametrize("field,value,message", [
    ("iterations", 0, "--iterations must be an integer >= 1, got 0"),
    ("batch_size", -1, "--batch-size must be an integer >= 1, got -1"),
    ("eval_every", 0, "--eval-every must be an integer >= 1, got 0"),
    ("eval_batch_size", True, "--eval-batch-size must be an integer >= 1, got True"),
    ("iterations", 2.5, "--iterations must be an integer >= 1, got 2.5"),
    ("seed", -1, "--seed must be an integer >= 0, got -1"),
    ("optimizer", "rmsprop", "--optimizer must be one of sgd, adam, got 'rmsprop'"),
    ("lr", 0.0, "--lr must be a real number in (0, inf), got 0.0"),
    ("lr", float("nan"), "--lr must be a real number in (0, inf), got nan"),
    ("momentum", 0.9, "--momentum and --nesterov apply to --optimizer sgd only"),
    ("momentum", 1.0, "--momentum must be a real number in [0, 1), got 1.0"),
    ("weight_decay", -1e-4, "--weight-decay must be a real number in [0, inf), got -0.0001"),
])
def test_bad_config(field, value, message):
    config = TrainConfig(**{"iterations": 10, field: value})
    with pytest.raises(ValueError, match=re.escape(message)):
        train(build_model("lenet_300_100"), synthetic(), config, progress=False)


def test_bad_labels_batch_and_snapshots():
    data = synthetic()
    bad = Dataset(data.x_train, np.where(data.y_train == 0, 10, data.y_train), data.x_val, data.y_val,
                  data.x_test, data.y_test)
    with pytest.raises(ValueError, match=r"y_train must hold labels in 0\.\.9 .* got labels from 1 to 10"):
        train(build_model("lenet_300_100"), bad, TrainConfig(5), progress=False)
    negative = Dataset(data.x_train, data.y_train, data.x_val, data.y_val - 1, data.x_test, data.y_test)
    with pytest.raises(ValueError, match="y_val must hold labels in 0..9"):
        train(build_model("lenet_300_100"), negative, TrainConfig(5), progress=False)
    with pytest.raises(ValueError, match="--batch-size 300 is larger than the training set"):
        train(build_model("lenet_300_100"), data, TrainConfig(5, batch_size=300), progress=False)
    with pytest.raises(ValueError, match=r"snapshot iterations must be integers in 0\.\.5"):
        train(build_model("lenet_300_100"), data, TrainConfig(5), snapshot_at=(6,), progress=False)


def test_check_data_needs_no_model():
    """What ``imp`` checks before it touches a run folder: empty splits, the batch size, labels below 0."""
    data = synthetic()
    check_data(data, 60)
    no_val = Dataset(data.x_train, data.y_train, data.x_val[:0], data.y_val[:0], data.x_test, data.y_test)
    with pytest.raises(ValueError, match="the val split is empty: training needs train, validation and test"):
        check_data(no_val, 60)
    with pytest.raises(ValueError, match=r"--batch-size 300 is larger than the training set \(250 examples\)"):
        check_data(data, 300)
    negative = Dataset(data.x_train, data.y_train - 1, data.x_val, data.y_val, data.x_test, data.y_test)
    with pytest.raises(ValueError, match="y_train must hold class labels >= 0, got labels from -1"):
        check_data(negative, 60)
    with pytest.raises(ValueError, match=r"y_train must hold labels in 0\.\.1 \(the model has 2 outputs\), got"):
        check_data(data, 60, num_classes=2)


def tiny_data(**splits):
    """A Dataset of 4 train, 2 val and 2 test 1x2x2 images with labels 0..3, 0..1 and 1..2; ``splits`` replace
    arrays by name (e.g. ``y_val=...``)."""
    x = np.zeros((4, 1, 2, 2), np.float32)
    arrays = {"x_train": x, "y_train": np.arange(4), "x_val": x[:2], "y_val": np.arange(2),
              "x_test": x[:2], "y_test": np.arange(1, 3)}
    return Dataset(**{**arrays, **splits}, name="tiny")


@pytest.mark.parametrize("splits,batch_size,num_classes,message", [
    ({"x_train": np.zeros((0, 1, 2, 2), np.float32), "y_train": np.zeros(0, np.int64)}, 1, None,
     "the train split is empty: training needs train, validation and test examples"),
    ({"x_test": np.zeros((0, 1, 2, 2), np.float32), "y_test": np.zeros(0, np.int64)}, 1, 10,
     "the test split is empty: training needs train, validation and test examples"),
    ({"x_val": np.zeros((3, 1, 2, 2), np.float32)}, 1, 10, "x_val has 3 examples but y_val has 2 labels"),
    ({"y_test": np.array([1.0, 2.0], np.float32)}, 1, 10, "y_test must hold integer class labels, got dtype float32"),
    ({"y_train": np.array([0, -2, 5, 1])}, 1, None, "y_train must hold class labels >= 0, got labels from -2 to 5"),
    ({"y_val": np.array([-1, 0])}, 1, 10,
     "y_val must hold labels in 0..9 (the model has 10 outputs), got labels from -1 to 0"),
    ({}, 1, 3, "y_train must hold labels in 0..2 (the model has 3 outputs), got labels from 0 to 3"),
    ({}, 5, 10, "--batch-size 5 is larger than the training set (4 examples); use a smaller --batch-size"),
], ids=["empty_train", "empty_test", "x_val_longer", "float_labels", "negative_labels", "label_below_0",
        "label_above_K-1", "batch_too_large"])
def test_check_data_names_what_is_wrong(splits, batch_size, num_classes, message):
    check_data(tiny_data(), 4, 4)  # the limits themselves pass: a batch of the whole set, labels up to K - 1
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_data(tiny_data(**splits), batch_size, num_classes)


# -- a validation loss that is nan -------------------------------------------------------------------


def test_nan_validation_losses_never_win_early_stopping(monkeypatch):
    """A nan validation loss counts as +inf: early stopping takes the first smallest finite one; nan is kept."""
    val_losses = [2.0, np.nan, 1.0, np.nan, 1.0]
    # evaluate is called for the validation set, then for the test set, at each evaluation
    answers = iter([answer for i, val_loss in enumerate(val_losses) for answer in ((val_loss, 0.5), (0.7, i / 10))])
    monkeypatch.setattr(train_module, "evaluate", lambda *args, **kwargs: next(answers))
    _, result = run(iterations=10, eval_every=2)
    h = result.history
    assert h["iteration"] == [2, 4, 6, 8, 10] and h["test_accuracy"] == [0.0, 0.1, 0.2, 0.3, 0.4]
    np.testing.assert_array_equal(h["val_loss"], val_losses)  # the nans stay in the history
    assert result.early_stop_iteration == 6 and result.test_accuracy_at_early_stop == 0.2
    assert result.final_test_accuracy == 0.4


def test_validation_loss_nan_at_every_evaluation_stops_early_at_the_first():
    """A nan image in the validation set makes every validation loss nan (training is unaffected): no evaluation
    is better than another, so the early-stopping iteration is the first evaluated one."""
    data = synthetic()
    x_val = data.x_val.copy()
    x_val[5, 0, 3, 3] = np.nan
    poisoned = Dataset(data.x_train, data.y_train, x_val, data.y_val, data.x_test, data.y_test)
    _, result = run(iterations=6, eval_every=2, data=poisoned)
    h = result.history
    assert h["iteration"] == [2, 4, 6]
    assert np.isnan(h["val_loss"]).all() and np.isfinite(h["train_loss"] + h["test_loss"]).all()
    assert result.early_stop_iteration == 2 and result.test_accuracy_at_early_stop == h["test_accuracy"][0]


# -- devices ------------------------------------------------------------------------------------------


def test_train_step_on_device_matches_cpu(device):
    """One Adam step of LeNet-300-100: the loss and every gradient agree with the CPU's, and so does every weight
    whose gradient is not within rounding of 0. Adam's first step is lr * g / (|g| + eps) with eps 1e-8: for a
    gradient that cancels to about eps, the two devices' orders of summation give different g, and so steps
    that differ by a good fraction of lr (on an H200: 2 of the first layer's 235,200 weights, by 3e-5)."""
    if device == "cpu":
        pytest.skip("the CPU is the reference: comparing it with itself proves nothing")
    data = synthetic()
    x, y = data.x_train[:60], data.y_train[:60]
    lr = 1e-3
    cpu_model = build_model("lenet_300_100")
    dev_model = on_device(cpu_model, device)
    cpu_loss = train_step(cpu_model, make_optimizer("adam", cpu_model, lr), x, y)
    dev_loss = train_step(dev_model, make_optimizer("adam", dev_model, lr), to_device(x, device), to_device(y, device))
    assert float(dev_loss) == pytest.approx(float(cpu_loss), rel=1e-5)
    cpu_grads, dev_grads = cpu_model.gradients(), dev_model.gradients()
    for name, grad in cpu_grads.items():
        np.testing.assert_allclose(to_numpy(dev_grads[name]), grad, rtol=1e-4, atol=1e-5 * np.abs(grad).max(),
                                   err_msg=name)
    cpu_params, dev_params = cpu_model.state_dict(), dev_model.state_dict()
    for name, grad in cpu_grads.items():
        steady = np.abs(grad) > 100 * 1e-8  # a step within lr * 1e-2 * (relative error of g) of the CPU's
        assert steady.mean() > 0.5, name  # the comparison covers most of the parameter
        np.testing.assert_allclose(dev_params[name][steady], cpu_params[name][steady], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
        assert np.abs(dev_params[name] - cpu_params[name]).max() <= 2 * lr, name  # each at most one step away


def test_conv2_train_step_on_device_matches_cpu(device):
    """One step of Conv-2 (on 2 tiny 3x8x8 images, so its dense layers stay small): loss, every gradient and every
    parameter agree with the CPU's. SGD with momentum, whose update is linear in the gradient (Adam's first step is
    about lr * sign(g), which rounding can flip for a gradient near 0)."""
    if device == "cpu":
        pytest.skip("the CPU is the reference: comparing it with itself proves nothing")
    rng = np.random.default_rng(0)
    x, y = rng.random((2, 3, 8, 8), dtype=np.float32), np.array([3, 7])
    cpu_model = build_model("conv2", input_shape=(3, 8, 8))
    cpu_model.set_masks({"0.W": rng.random((64, 3, 3, 3)) > 0.1})
    dev_model = on_device(cpu_model, device)
    cpu_loss = train_step(cpu_model, make_optimizer("sgd", cpu_model, 0.1, momentum=0.9), x, y)
    dev_loss = train_step(dev_model, make_optimizer("sgd", dev_model, 0.1, momentum=0.9),
                          to_device(x, device), to_device(y, device))
    assert float(dev_loss) == pytest.approx(float(cpu_loss), rel=1e-5)
    cpu_grads, cpu_params, dev_params = cpu_model.gradients(), cpu_model.state_dict(), dev_model.state_dict()
    for name, grad in dev_model.gradients().items():
        scale = float(np.abs(cpu_grads[name]).max())  # gradients near 0 keep only the precision of the largest
        np.testing.assert_allclose(to_numpy(grad), cpu_grads[name], rtol=1e-4, atol=1e-5 * scale, err_msg=name)
        np.testing.assert_allclose(dev_params[name], cpu_params[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_train_runs_on_device(device):
    if device == "cpu":
        pytest.skip("the CPU is the reference: comparing it with itself proves nothing")
    data = synthetic()
    _, cpu = run(iterations=6, eval_every=3, data=data)
    model = build_model("lenet_300_100")
    result = train(model, data, TrainConfig(6, eval_every=3), device=device, snapshot_at=(0, 6), progress=False)
    np.testing.assert_allclose(result.history["train_loss"], cpu.history["train_loss"], rtol=1e-4)
    np.testing.assert_allclose(result.history["val_loss"], cpu.history["val_loss"], rtol=1e-4)
    assert isinstance(result.snapshots[6]["1.W"], np.ndarray)


# -- real MNIST and the command line ------------------------------------------------------------------


@pytest.mark.mnist
def test_lenet_reaches_96_percent_on_mnist_within_1500_iterations(mnist_data):
    """The paper's LeNet-300-100 (Adam 1.2e-3, batch 60, Figure 2) on MNIST: >= 96.0% test accuracy by 1,500."""
    model = build_model("lenet_300_100", seed=0)
    result = train(model, mnist_data, TrainConfig(1500, batch_size=60, optimizer="adam", lr=1.2e-3, eval_every=500),
                   progress=False)
    assert result.history["iteration"][-1] == 1500
    assert result.final_test_accuracy >= 0.960, result.history


@pytest.mark.mnist
def test_cli_train_writes_metrics(mnist_data, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--model", "lenet_300_100", "--iterations", "20", "--eval-every", "10",
                 "--no-progress", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "266,200" in printed and "early stopping at iteration" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["history"]["iteration"] == [10, 20]
    assert metrics["early_stop_iteration"] in (10, 20)
    assert 0.0 <= metrics["test_accuracy_at_early_stop"] <= 1.0 and 0.0 <= metrics["final_test_accuracy"] <= 1.0
    assert metrics["config"]["iterations"] == 20 and metrics["config"]["lr"] == 1.2e-3
    assert metrics["model"] == "lenet_300_100" and metrics["dataset"] == "mnist"


def test_cli_bad_option_is_one_line(tmp_path, capsys):
    code = main(["train", "--iterations", "0", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == "minilottery train: error: --iterations must be an integer >= 1, got 0"


def test_training_defaults_are_the_papers_from_one_table():
    from minilottery.models import DEFAULT_MODEL, PAPER_TRAINING

    lenet = PAPER_TRAINING[DEFAULT_MODEL]
    assert (TrainConfig().iterations, TrainConfig().lr) == (lenet["iterations"], lenet["lr"]) == (50_000, 1.2e-3)
    assert TrainConfig.paper(DEFAULT_MODEL) == TrainConfig()
    conv2 = TrainConfig.paper("conv2", batch_size=30, lr=None)  # None keeps the paper's value
    assert (conv2.iterations, conv2.lr, conv2.batch_size) == (20_000, 2e-4, 30)
    with pytest.raises(ValueError, match="--model must be one of"):
        TrainConfig.paper("lenet")
