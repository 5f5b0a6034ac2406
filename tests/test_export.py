"""Tickets as files (ticket_file.py, lab/export.py, ``minilottery export``): a run's ticket exported and read back
exactly, in ``torch.nn.utils.prune``'s names and shapes, loadable by PyTorch (when it is installed) with the same
logits, and one-line refusals."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save

import minilottery
from minilottery.imp import IMPConfig
from minilottery.lab import runs
from minilottery.lab.cli import main
from minilottery.lab.export import export_ticket
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.sparse import SparseModel
from minilottery.layers import Conv2d, Dense
from minilottery.models import build_model
from minilottery.ticket_file import TicketInfo, load_ticket, read_ticket, save_ticket
from minilottery.training import evaluate, train
from tests.helpers import make_fake_weight_run, small_config, synthetic_data


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("fake") / "run"
    make_fake_weight_run(run_dir)  # rounds 0-3, reinit in rounds 1 and 3, random_prune in 1-3
    return run_dir


def metadata_of(path) -> dict[str, str]:
    with safe_open(str(path), framework="numpy") as f:
        return f.metadata()


def tensors_of(path) -> dict[str, np.ndarray]:
    with safe_open(str(path), framework="numpy") as f:
        return {name: f.get_tensor(name) for name in f.keys()}


def torch_layout(model) -> dict[str, tuple[int, ...]]:
    """The names and shapes ``torch.nn.utils.prune`` gives a pruned nn.Sequential of the same layers, written out
    from the layer list: a Linear's weight is (out, in), a Conv2d's (out, in, kh, kw), a bias (out,)."""
    layout = {}
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dense):
            shape = (layer.out_features, layer.in_features)
        elif isinstance(layer, Conv2d):
            shape = (layer.out_channels, layer.in_channels, layer.kh, layer.kw)
        else:
            continue
        layout[f"{i}.weight_orig"] = layout[f"{i}.weight_mask"] = shape
        layout[f"{i}.bias"] = (shape[0],)
    return layout


# -- round trips ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("index, arm, trained", [(3, "ticket", False), (1, "reinit", True), (2, "random_prune", False),
                                                 (0, "ticket", True)])
def test_export_then_read_gives_the_run_files_exactly(fake_run, tmp_path, index, arm, trained):
    out = tmp_path / "t.safetensors"
    export_ticket(fake_run, out, index, arm, trained=trained)
    folder = runs.round_dir(fake_run, index)
    masks = runs.load_npz(folder / arm / "masks.npz" if arm == "random_prune" else folder / "masks.npz")
    weights = runs.load_npz(folder / arm / ("final.npz" if trained else "init.npz"))
    ticket = read_ticket(out)
    assert ticket.weights.keys() == weights.keys() and ticket.masks.keys() == masks.keys()
    for name in weights:
        np.testing.assert_array_equal(ticket.weights[name], weights[name], err_msg=name)
        assert ticket.weights[name].dtype == weights[name].dtype == np.float32
    for name in masks:
        assert ticket.masks[name].dtype == bool
        np.testing.assert_array_equal(ticket.masks[name], masks[name], err_msg=name)
    round_info = runs.completed_rounds(fake_run)[index]
    assert ticket.info == TicketInfo(
        model="lenet_300_100", input_shape=(1, 28, 28), dataset="mnist", round=index, arm=arm,
        percent_remaining=round_info["percent_remaining"], weight_orig="trained" if trained else "start",
        reset="init", config=IMPConfig.from_dict(runs.read_json(fake_run / "config.json")).to_dict(),
        **round_info["arms"][arm])
    model = load_ticket(out)  # the network, its weights and its masks
    assert all(np.array_equal(model.state_dict()[name], weights[name]) for name in weights)
    assert model.masks().keys() == masks.keys()
    assert all(np.array_equal(model.masks()[name], masks[name].astype(np.float32)) for name in masks)


def test_the_metadata_is_exactly_this(fake_run, tmp_path):
    out = tmp_path / "t.safetensors"
    export_ticket(fake_run, out)  # the defaults: the last round's ticket, its start weights
    config = runs.read_json(fake_run / "config.json")
    config.pop("data")
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    import hashlib

    arm = runs.completed_rounds(fake_run)[3]["arms"]["ticket"]
    assert metadata_of(out) == {
        "format": "minilottery-ticket", "format_version": "1", "minilottery_version": minilottery.__version__,
        "model": "lenet_300_100", "input_shape": "[1, 28, 28]", "dataset": "mnist", "round": "3", "arm": "ticket",
        "percent_remaining": repr(runs.completed_rounds(fake_run)[3]["percent_remaining"]),
        "early_stop_iteration": str(arm["early_stop_iteration"]),
        "test_accuracy_at_early_stop": repr(arm["test_accuracy_at_early_stop"]),
        "final_test_accuracy": repr(arm["final_test_accuracy"]),
        "weight_orig": "start", "reset": "init", "config": json.dumps(config),
        "config_hash": hashlib.sha256(text.encode()).hexdigest(),
    }


def test_the_names_and_shapes_are_torch_prunes(fake_run, tmp_path):
    out = tmp_path / "t.safetensors"
    export_ticket(fake_run, out, 1)
    tensors = tensors_of(out)
    assert {name: t.shape for name, t in tensors.items()} == torch_layout(build_model("lenet_300_100"))
    assert {"1.weight_orig", "1.weight_mask", "1.bias", "5.weight_mask"} <= set(tensors)  # Flatten is layer 0
    assert all(tensors[n].dtype == np.float32 for n in tensors)
    mask = tensors["1.weight_mask"]
    assert set(np.unique(mask)) == {0.0, 1.0} and np.all(tensors["1.weight_orig"][mask == 0] == 0)


def test_a_conv_ticket_has_torch_conv_shapes(tmp_path):
    model = build_model("conv2", (3, 8, 8), seed=1)
    rng = np.random.default_rng(0)
    masks = {name: rng.random(v.shape) < 0.5 for name, v in model.parameters().items() if name.endswith(".W")}
    info = TicketInfo("conv2", (3, 8, 8), "cifar10", 1, "ticket", 50.0, None, None, None, "start", "init", {})
    save_ticket(tmp_path / "c.safetensors", model.state_dict(), masks, info)
    tensors = tensors_of(tmp_path / "c.safetensors")
    assert {name: t.shape for name, t in tensors.items()} == torch_layout(model)
    assert tensors["0.weight_orig"].shape == (64, 3, 3, 3) and tensors["2.weight_orig"].shape == (64, 64, 3, 3)
    ticket = read_ticket(tmp_path / "c.safetensors")
    assert all(np.array_equal(ticket.masks[n], masks[n]) for n in masks) and ticket.info == info


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "run"
    run_imp_in_folder(small_config(rounds=2, controls=("reinit",)), synthetic_data(), out, progress=False)
    return out


def test_a_loaded_ticket_trains_exactly_as_its_run_did(real_run, tmp_path):
    """load_ticket + train gives the run's trained weights bitwise: the masks travel with the model."""
    export_ticket(real_run, tmp_path / "t.safetensors", 2)
    model = load_ticket(tmp_path / "t.safetensors")
    config = IMPConfig.from_dict(runs.read_json(real_run / "config.json"))
    result = train(model, synthetic_data(), config.train, progress=False)
    final = runs.load_npz(runs.round_dir(real_run, 2) / "ticket" / "final.npz")
    assert all(np.array_equal(model.state_dict()[n], final[n]) for n in final)
    metrics = runs.completed_rounds(real_run)[2]["arms"]["ticket"]
    assert result.early_stop_iteration == metrics["early_stop_iteration"]


def test_a_trained_ticket_scores_its_final_accuracy_and_sparsifies(real_run, tmp_path):
    info = export_ticket(real_run, tmp_path / "t.safetensors", 1, "reinit", trained=True)
    model = load_ticket(tmp_path / "t.safetensors")
    data = synthetic_data()
    assert evaluate(model, data.x_test, data.y_test)[1] == pytest.approx(info.final_test_accuracy, abs=1e-12)
    sparse = SparseModel.from_model(model)
    np.testing.assert_allclose(sparse.forward(data.x_test), model.eval().forward(data.x_test), rtol=1e-5, atol=1e-5)


# -- PyTorch -------------------------------------------------------------------------------------------------


def test_pytorch_loads_the_file_into_a_pruned_sequential_with_the_same_logits(fake_run, tmp_path):
    torch = pytest.importorskip("torch")
    export_ticket(fake_run, tmp_path / "ticket.safetensors", 2, "random_prune", trained=True)
    path = str(tmp_path / "ticket.safetensors")
    # -- the README's lines ("Tickets as files"), as a PyTorch user writes them --
    from safetensors.torch import load_file
    from torch import nn
    from torch.nn.utils import prune

    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                        nn.Linear(100, 10))
    state = load_file(path)
    for name, module in net.named_children():
        if f"{name}.weight_mask" in state:
            prune.identity(module, "weight")  # adds weight_orig and weight_mask, as pruning does
    net.load_state_dict(state)
    # -- end of the README's lines --
    x = np.random.default_rng(0).random((16, 1, 28, 28), dtype=np.float32)
    ours = build_model("lenet_300_100")  # the run's network from its own files, not through the ticket file
    arm_dir = runs.round_dir(fake_run, 2) / "random_prune"
    ours.load_state_dict(runs.load_npz(arm_dir / "final.npz"))
    ours.set_masks(runs.load_npz(arm_dir / "masks.npz"))
    ours = ours.eval().forward(x)
    with torch.no_grad():
        theirs = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-5)
    assert torch.equal(net[1].weight, net[1].weight_orig * net[1].weight_mask)


def test_pytorch_runs_a_conv_ticket_with_the_same_logits(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file
    from torch import nn
    from torch.nn.utils import prune

    model = build_model("conv2", (3, 8, 8), seed=1)
    rng = np.random.default_rng(0)
    state = {n: v + (0.1 * rng.standard_normal(v.shape)).astype(np.float32) for n, v in model.state_dict().items()}
    masks = {n: rng.random(v.shape) < 0.3 for n, v in state.items() if n.endswith(".W")}
    info = TicketInfo("conv2", (3, 8, 8), "cifar10", 1, "ticket", 30.0, None, None, None, "start", "init", {})
    save_ticket(tmp_path / "c.safetensors", state, masks, info)
    modules = []
    for layer in model.layers:  # the same layers, in PyTorch
        kind = type(layer).__name__
        if kind == "Conv2d":
            modules.append(nn.Conv2d(layer.in_channels, layer.out_channels, (layer.kh, layer.kw),
                                     stride=layer.stride, padding=layer.padding))
        elif kind == "Dense":
            modules.append(nn.Linear(layer.in_features, layer.out_features))
        else:
            modules.append({"ReLU": nn.ReLU, "Flatten": nn.Flatten, "MaxPool2d": lambda: nn.MaxPool2d(2)}[kind]())
    net = nn.Sequential(*modules)
    for module in net:
        if hasattr(module, "weight"):
            prune.identity(module, "weight")
    net.load_state_dict(load_file(str(tmp_path / "c.safetensors")))
    x = rng.random((4, 3, 8, 8), dtype=np.float32)
    with torch.no_grad():
        theirs = net(torch.from_numpy(x)).numpy()
    model.load_state_dict(state)
    model.set_masks(masks)
    np.testing.assert_allclose(theirs, model.eval().forward(x), rtol=1e-5, atol=1e-5)


# -- the command and its refusals ----------------------------------------------------------------------------


def test_the_command_writes_the_file_and_says_what_it_holds(fake_run, tmp_path, capsys):
    out = tmp_path / "t.safetensors"
    assert main(["export", str(fake_run), "--round", "1", "--arm", "reinit", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out}: lenet_300_100 reinit of round 1 of {fake_run} (") and printed.count(
        "\n") == 1
    assert read_ticket(out).info.arm == "reinit"
    assert main(["export", str(fake_run), "--trained", "--out", str(out), "--overwrite"]) == 0
    assert (read_ticket(out).info.round, read_ticket(out).info.weight_orig) == (3, "trained")


@pytest.mark.parametrize("argv, message", [
    (["--round", "4"], r"--round 4: .* has completed rounds 0 to 3; choose one of them"),
    (["--round", "-1"], r"--round -1: .* has completed rounds 0 to 3"),
    (["--round", "2", "--arm", "reinit"],
     r"--arm reinit: round 2 of .* has no reinit, only ticket, random_prune; choose one"),
    (["--round", "0", "--arm", "random_prune"], r"--arm random_prune: round 0 of .* has no random_prune, only ticket;"),
])
def test_a_round_or_arm_not_in_the_run_is_refused_in_one_line(fake_run, tmp_path, capsys, argv, message):
    out = tmp_path / "t.safetensors"
    assert main(["export", str(fake_run), *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minilottery export: error: ") and err.count("\n") == 1
    assert re.search(message, err), err
    assert not out.exists()


def test_an_existing_out_a_folder_and_a_non_run_are_refused_in_one_line(fake_run, tmp_path, capsys):
    taken = tmp_path / "taken.safetensors"
    taken.write_bytes(b"mine")
    cases = [
        ([str(fake_run), "--out", str(taken)], f"--out {taken} exists; use --overwrite to replace it"),
        ([str(fake_run), "--out", str(tmp_path)], f"--out {tmp_path} is a folder; give a file name"),
        ([str(tmp_path), "--out", str(tmp_path / "t.safetensors")], "is not a run folder of `minilottery imp`"),
    ]
    for argv, message in cases:
        assert main(["export", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert taken.read_bytes() == b"mine"
    assert not (tmp_path / "t.safetensors").exists()


def test_every_option_shows_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default: the last completed round)", "(default: ticket)", "(default: off, the weights",
                    "(required; no default)", "replace FILE if it exists (default: off)"):
        assert default in text


def test_files_that_are_not_tickets_are_refused_in_one_line(fake_run, tmp_path):
    good = tmp_path / "good.safetensors"
    export_ticket(fake_run, good)
    tensors, metadata = tensors_of(good), metadata_of(good)
    bad_mask = dict(tensors, **{"3.weight_mask": tensors["3.weight_mask"] * 2})
    cases = {
        "garbage": (b"not a safetensors file at all", "is not a safetensors file"),
        "no metadata": (save(tensors), "is not a minilottery ticket file"),
        "newer format": (save(tensors, dict(metadata, format_version="2")), "has ticket format version '2'"),
        "a missing mask": (save({k: v for k, v in tensors.items() if k != "5.weight_mask"}, metadata),
                           "is not a ticket of lenet_300_100 on (1, 28, 28) inputs: it lacks 5.weight_mask"),
        "W instead of weight": (save(dict({k: v for k, v in tensors.items() if k != "1.bias"}, **{"1.b": tensors[
            "1.bias"]}), metadata), "it lacks 1.bias and has unknown 1.b"),
        "a mask of 2s": (save(bad_mask, metadata), "3.weight_mask holds values other than 0 and 1"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(content)
        with pytest.raises(ValueError, match=re.escape(message)) as caught:
            minilottery.load_ticket(path)
        assert "\n" not in str(caught.value), name
    with pytest.raises(ValueError, match="is missing; write it with `minilottery export RUN --out"):
        load_ticket(tmp_path / "absent.safetensors")
