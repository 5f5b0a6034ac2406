"""``minilottery bench``: the result's schema and the CLI (correctness only; no timing is asserted).

``--vs-torch-script``: the command lines, the turns, the arithmetic and the missing-PyTorch error need no PyTorch;
the tests that run ``benchmarks/torch_peer.py`` need it and skip without it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minilottery import compiled
from minilottery.lab import bench_sparse, bench_torch
from minilottery.lab.bench import BenchConfig, format_report, run_bench
from minilottery.lab.bench_config import TorchScriptConfig
from minilottery.lab.bench_sparse import (
    check_same_predictions,
    magnitude_masks,
    mismatched_predictions,
    output_fraction,
    sparse_row,
)
from minilottery.lab.bench_steps import time_per_call, training_flops
from minilottery.lab.bench_torch import (
    PEER_SCRIPT,
    THREAD_VARIABLES,
    TORCH_MISSING,
    check_torch,
    commands,
    demo_masks,
    run_alternately,
    run_vs_torch_script,
    summarize,
    thread_env,
)
from minilottery.lab.cli import main
from minilottery.lab.sparse import SparseModel
from minilottery.models import build_model

TINY = dict(repeats=1, warmup=0, eval_batch_size=50, eval_repeats=1, peak_size=64, peak_repeats=1,
            sparse_images=300, sparse_repeats=1)
MODEL_KEYS = {"ms_per_step": float, "gflop_per_step": float, "gflops": float, "fraction_of_peak": float,
              "eval_images_per_s": float, "peak_memory_mb": float, "first_layer_input_grad": bool,
              "masks": str, "memory_method": str}
SPARSE_KEYS = {"fraction": float, "output_fraction": float, "weights_kept": int, "dense_images_per_s": float,
               "sparse_images_per_s": float, "speedup": float, "predictions_identical": bool}


def test_run_bench_schema():
    result = run_bench(BenchConfig(models=("lenet_300_100",), sparse_fractions=(1.0, 0.05), **TINY))
    json.dumps(result)  # JSON-able as a whole
    assert result["device"] == "cpu"
    assert result["machine"]["cpu_count"] >= 1 and isinstance(result["machine"]["numpy"], str)
    # whether Adam ran as the compiled loop or as NumPy passes is part of every step's time: said in the report
    assert result["machine"]["compiled"] == compiled.describe()
    assert f"compiled loops: {compiled.describe()}" in format_report(result).splitlines()[1]
    assert result["peak_gflops"] > 0 and result["peak_size"] == 64
    entry = result["models"]["lenet_300_100"]
    for key, kind in MODEL_KEYS.items():
        assert isinstance(entry[key], kind), key
    for key in ("ms_per_step", "gflop_per_step", "gflops", "fraction_of_peak", "eval_images_per_s", "peak_memory_mb"):
        assert entry[key] > 0, key
    assert entry["fraction_of_peak"] == pytest.approx(entry["gflops"] / result["peak_gflops"])
    assert entry["first_layer_input_grad"] is False  # train_step skips the images' gradient
    rows = result["sparse"]["rows"]
    assert [r["fraction"] for r in rows] == [1.0, 0.05]
    for row in rows:
        for key, kind in SPARSE_KEYS.items():
            assert isinstance(row[key], kind), key
        assert row["dense_images_per_s"] > 0 and row["sparse_images_per_s"] > 0
        assert row["predictions_identical"] is True and row["max_abs_logit_diff"] < 1e-3
    assert rows[0]["weights_kept"] == 266_200 and rows[1]["weights_kept"] < 0.1 * 266_200
    for row in rows:  # with several cores the threaded pass is timed at its own best block size
        assert (row["sparse_threads_block"] is None) == (row["sparse_threads_images_per_s"] is None)


def test_conv2_step_runs_and_is_counted():
    result = run_bench(BenchConfig(models=("conv2",), batch_size=2, memory=False, sparse=False, **TINY))
    entry = result["models"]["conv2"]
    n = 2
    conv1, conv2 = 2 * n * 28 * 28 * 1 * 9 * 64, 2 * n * 28 * 28 * 64 * 9 * 64
    dense = 2 * n * (14 * 14 * 64 * 256 + 256 * 256 + 256 * 10)
    forward = conv1 + conv2 + dense
    assert entry["gflop_forward"] == pytest.approx(forward / 1e9)
    assert entry["gflop_backward"] == pytest.approx((2 * forward - conv1) / 1e9)  # no dx for the first conv
    assert "peak_memory_mb" not in entry and result["sparse"] is None
    assert entry["winograd_convolutions"] == [0, 2]  # 2 images of 7 x 7 tiles: fewer than WINOGRAD_MIN_TILES
    assert "Winograd" not in format_report(result)


def test_the_report_says_which_convolutions_ran_winograd():
    # 3 images of 7 x 7 tiles of 4 x 4 pixels (28 x 28): 147 tiles, enough for the second convolution
    result = run_bench(BenchConfig(models=("conv2",), batch_size=3, memory=False, sparse=False, **TINY))
    on = compiled.enabled()
    assert result["models"]["conv2"]["winograd_convolutions"] == [int(on), 2]
    note = "note: conv2 ran 1 of its 2 convolutions by Winograd's algorithm"
    assert (note in format_report(result)) == on


def test_training_flops_lenet():
    x = np.zeros((60, 1, 28, 28), dtype=np.float32)
    flops = training_flops(build_model("lenet_300_100"), x)
    per_example = 784 * 300 + 300 * 100 + 100 * 10
    assert flops["forward"] == 2 * 60 * per_example
    assert flops["backward"] == 2 * 60 * (2 * per_example - 784 * 300)
    assert flops["total"] == flops["forward"] + flops["backward"]


def test_one_timer_counts_its_calls():
    calls, syncs = [], []
    times, per_repeat = time_per_call(lambda: calls.append(1), lambda: syncs.append(1), repeats=3, warmup=2)
    assert len(times) == 3 and per_repeat == 1 and len(calls) == 2 + 3
    assert len(syncs) == 2 * 3  # before and after every timed block
    calls.clear()
    times, per_repeat = time_per_call(lambda: calls.append(1), lambda: None, repeats=2, warmup=0, min_seconds=1e-3)
    assert per_repeat >= 1 and len(calls) == 1 + 2 * per_repeat  # one call sizes the blocks
    assert all(t >= 0 for t in times)


def test_magnitude_masks_keep_the_largest():
    model = build_model("lenet_300_100", seed=0)
    masks = magnitude_masks(model, 0.1)
    params = model.parameters()
    assert int(masks["1.W"].sum()) == round(0.1 * 784 * 300)
    assert int(masks["5.W"].sum()) == round(output_fraction(0.1) * 1000)  # output layer at half the rate
    kept, pruned = np.abs(params["1.W"][masks["1.W"] == 1]), np.abs(params["1.W"][masks["1.W"] == 0])
    assert kept.min() >= pruned.max()
    assert output_fraction(0.8 ** 3) == pytest.approx(0.9 ** 3)
    assert output_fraction(1.0) == 1.0


def test_check_same_predictions_catches_a_difference():
    logits = np.array([[0.0, 1.0], [2.0, 0.0]], dtype=np.float32)
    check_same_predictions(logits, logits + 1e-7, "same")
    with pytest.raises(AssertionError, match="2 of 2 predictions"):
        check_same_predictions(logits, logits[:, ::-1], "swapped")


def test_mismatched_predictions_counts_the_rows_whose_class_differs():
    dense = np.array([[0.0, 1.0, 0.5], [2.0, 0.0, 0.0], [0.0, 0.0, 3.0]], dtype=np.float32)  # classes 1, 0, 2
    assert mismatched_predictions(dense, dense + 0.25) == 0  # a shift keeps every argmax
    sparse = dense.copy()
    sparse[0, 0] = 0.75  # the first example still picks class 1 (only its smallest logit moved)
    sparse[2, 0] = 4.0  # the third example now picks class 0
    assert mismatched_predictions(dense, sparse) == 1


def test_sparse_row_records_the_predictions_it_compared(monkeypatch):
    """A planted difference (the sparse model's classes reversed) fails the row's check; with the check taken
    out, the row itself says the predictions differ: the field is measured, not written down."""
    forward = SparseModel.forward
    monkeypatch.setattr(SparseModel, "forward", lambda self, x: forward(self, x)[:, ::-1])  # (n, 10), reversed
    x = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)  # (8, 1, 28, 28)
    config = BenchConfig(sparse_repeats=1)
    with pytest.raises(AssertionError, match="sparse LeNet at 100.0%: 8 of 8 predictions differ"):
        sparse_row(1.0, x, "cpu", config)
    checked = []
    monkeypatch.setattr(bench_sparse, "check_same_predictions", lambda *args: checked.append(args[2]))
    row = sparse_row(1.0, x, "cpu", config)
    assert checked == ["sparse LeNet at 100.0%"]
    assert row["predictions_identical"] is False and row["max_abs_logit_diff"] > 0


def test_bad_options_fail_in_one_line(capsys):
    with pytest.raises(ValueError, match="--models"):
        BenchConfig(models=("lenet",)).validate()
    with pytest.raises(ValueError, match=r"--sparse-fractions must be a real number in \(0.0, 1.0\], got 0.0"):
        BenchConfig(sparse_fractions=(1.0, 0.0)).validate()
    with pytest.raises(ValueError, match="--peak-size must be an integer >= 16 and <= 16,384, got True"):
        BenchConfig(peak_size=True).validate()
    assert main(["bench", "--repeats", "0"]) == 2
    assert "--repeats must be an integer >= 1" in capsys.readouterr().err


def test_cli_json(capsys):
    code = main(["bench", "--models", "lenet_300_100", "--repeats", "1", "--warmup", "0", "--peak-size", "64",
                 "--no-sparse", "--no-memory", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"machine", "peak_gflops", "models", "sparse", "device"}
    assert result["models"]["lenet_300_100"]["ms_per_step"] > 0


def test_cli_help():
    out = subprocess.run([sys.executable, "-m", "minilottery", "bench", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "--compare-torch" in out and "--json" in out and "--device" in out


def test_compare_torch_without_torch_prints_one_line():
    code = ("import sys; sys.modules['torch'] = None\n"  # makes `import torch` raise ImportError
            "from minilottery.lab.cli import main\n"
            "sys.exit(main(['bench', '--models', 'lenet_300_100', '--repeats', '1', '--warmup', '0',\n"
            "               '--peak-size', '64', '--no-sparse', '--no-memory', '--compare-torch']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(TORCH_MISSING) == 1
    assert "ms/step" in done.stdout  # and the benchmark went on


# -- --vs-torch-script ------------------------------------------------------------------------------------


def test_both_sides_get_the_same_options():
    config = TorchScriptConfig(iterations=700, eval_every=50, density=0.2, seed=3, threads=2)
    lines = commands(config, "/data/mnist", "/venv/bin/python", Path("/repo/benchmarks/torch_peer.py"))
    assert list(lines) == ["minilottery", "pytorch"]  # the order of each pair
    assert lines["minilottery"][:3] == [sys.executable, "-m", "minilottery.lab.bench_torch"]
    assert lines["pytorch"][:2] == ["/venv/bin/python", "/repo/benchmarks/torch_peer.py"]
    options = lines["minilottery"][3:]
    assert options == lines["pytorch"][2:]
    assert dict(zip(options[::2], options[1::2])) == {
        "--data": "/data/mnist", "--iterations": "700", "--eval-every": "50", "--density": "0.2", "--seed": "3",
        "--threads": "2"}


def test_both_sides_accept_the_options_they_are_given():
    """minilottery's side parses every option ``commands`` passes; the PyTorch script defines each of them."""
    options = commands(TorchScriptConfig(density=0.5, seed=2), "/data", "python", PEER_SCRIPT)["minilottery"][3:]
    args = bench_torch.script_parser().parse_args(options)
    assert (args.data, args.iterations, args.eval_every, args.density, args.seed, args.threads) == \
        ("/data", 5000, 100, 0.5, 2, 1)
    peer = PEER_SCRIPT.read_text()
    missing = [option for option in options[::2] if f'add_argument("{option}"' not in peer]
    assert not missing, f"benchmarks/torch_peer.py has no {missing}"


def test_thread_env_sets_every_library_alike():
    env = thread_env(3, base={"PATH": "/bin", "OMP_NUM_THREADS": "8"})
    assert env["PATH"] == "/bin"
    assert {name: env[name] for name in THREAD_VARIABLES} == dict.fromkeys(THREAD_VARIABLES, "3")


def test_sides_run_in_turns():
    calls = []

    def fake_timer(side, command, env):
        calls.append(side)
        return 10.0 * len(calls), f"early stopping at iteration {100 * len(calls)} (minimum validation loss): " \
                                  f"test accuracy 97.5{len(calls)}%\n"

    runs = run_alternately({"minilottery": ["a"], "pytorch": ["b"]}, 3, {}, fake_timer)
    assert calls == ["minilottery", "pytorch"] * 3  # A B A B A B
    assert [r["seconds"] for r in runs["minilottery"]] == [10.0, 30.0, 50.0]
    assert runs["pytorch"][0] == {"seconds": 20.0, "early_stop_iteration": 200, "test_accuracy": 97.52}


def test_summary_arithmetic():
    result = summarize({"minilottery": [2.0, 9.0, 3.0], "pytorch": [4.0, 10.0, 12.0]})
    assert result["pair_ratios"] == pytest.approx([0.5, 0.9, 0.25])
    assert result["median_ratio"] == pytest.approx(0.5)  # the median of the pairs' ratios
    assert result["ratio_of_medians"] == pytest.approx(3.0 / 10.0)
    ours = result["sides"]["minilottery"]
    assert (ours["median"], ours["min"], ours["max"]) == (3.0, 2.0, 9.0)
    assert ours["spread"] == pytest.approx((9.0 - 2.0) / 3.0)


def test_missing_torch_is_one_line_with_the_fix(capsys):
    class Failed:
        returncode, stdout = 1, ""

    with pytest.raises(ValueError, match=r"python3 cannot import torch; .*pip install torch.*--torch-python"):
        check_torch("python3", run=lambda *args, **kwargs: Failed())
    with pytest.raises(ValueError, match="cannot import torch"):
        check_torch("/no/such/python")  # not an interpreter at all
    assert main(["bench", "--vs-torch-script", "--torch-python", "/no/such/python"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install torch" in err and "--torch-python" in err


def test_vs_torch_script_bad_options_fail_in_one_line(capsys):
    with pytest.raises(ValueError, match=r"--density must be a real number in \(0.0, 1.0\]"):
        TorchScriptConfig(density=1.5).validate()
    assert main(["bench", "--vs-torch-script", "--runs", "0"]) == 2
    assert "--runs must be an integer >= 1" in capsys.readouterr().err


def test_vs_torch_script_without_torch(monkeypatch, mnist_data, capsys):
    """The whole mode, through the CLI, with the processes replaced by a fake clock: what it prints and returns."""
    monkeypatch.setattr(bench_torch, "check_torch", lambda python: "9.9")
    seconds = iter([4.0, 8.0, 6.0, 10.0, 5.0, 20.0])  # minilottery, PyTorch, minilottery, ...
    lines = "early stopping at iteration {} (minimum validation loss): test accuracy 98.00%"
    monkeypatch.setattr(bench_torch, "time_process",
                        lambda side, command, env: (next(seconds), lines.format(100 if side == "pytorch" else 200)))
    assert main(["bench", "--vs-torch-script", "--runs", "3", "--iterations", "20", "--threads", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["pair_ratios"] == pytest.approx([0.5, 0.6, 0.25]) and result["median_ratio"] == pytest.approx(0.5)
    assert result["runs"]["pytorch"][2] == {"seconds": 20.0, "early_stop_iteration": 100, "test_accuracy": 98.0}
    assert result["commands"]["minilottery"][-2:] == ["--threads", "2"] and result["torch_version"] == "9.9"
    seconds = iter([4.0, 8.0])
    assert main(["bench", "--vs-torch-script", "--runs", "1", "--iterations", "20"]) == 0
    out = capsys.readouterr().out
    assert "minilottery takes 0.50x PyTorch's wall time (median of 1 pairs" in out
    assert "PyTorch 9.9: median 8.00 s [8.00, 8.00], spread 0%; early stop at 100, test accuracy 98.00%" in out


def test_demo_masks_keep_what_the_rounds_leave():
    model = build_model("lenet_300_100", seed=0)
    assert all(mask.all() for mask in demo_masks(model, 1.0).values())  # round 0: every weight, masked
    masks = demo_masks(model, 0.8 ** 3)  # after three rounds
    assert int(masks["1.W"].sum()) == round(0.8 ** 3 * 784 * 300)
    assert int(masks["3.W"].sum()) == round(0.8 ** 3 * 300 * 100)
    assert int(masks["5.W"].sum()) == round(0.9 ** 3 * 1000)  # the output layer at half the rate
    kept, pruned = np.abs(model.parameters()["1.W"][masks["1.W"]]), np.abs(model.parameters()["1.W"][~masks["1.W"]])
    assert kept.min() >= pruned.max()


def test_minilottery_side_trains_one_network(mnist_data, capsys):
    assert bench_torch.main(["--iterations", "20", "--eval-every", "10", "--density", "0.5", "--seed", "0",
                             "--threads", "1"]) == 0
    found = bench_torch.parse_result(capsys.readouterr().out)
    assert found["early_stop_iteration"] in (10, 20) and 50 < found["test_accuracy"] <= 100


# -- the PyTorch script itself: needs PyTorch -------------------------------------------------------------


def load_peer():
    """``benchmarks/torch_peer.py`` as a module (it is a script, not part of the package)."""
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("torch_peer", PEER_SCRIPT)
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    return peer


def test_peer_reads_the_same_split(mnist_data):
    peer = load_peer()
    data = peer.load_mnist(Path(os.environ["MINILOTTERY_DATA"]))
    for split in ("train", "val", "test"):
        x, y = data[split]
        assert np.array_equal(y.numpy(), getattr(mnist_data, f"y_{split}")), split
        ours = getattr(mnist_data, f"x_{split}").reshape(len(y), -1)  # (N, 1, 28, 28) -> (N, 784)
        assert np.array_equal(x.numpy(), ours), split


def test_peer_masks_like_the_demo():
    peer = load_peer()
    import torch

    weight = torch.randn(300, 100)
    mask = peer.magnitude_mask(weight, 0.2)
    assert int(mask.sum()) == 6000 and weight.abs()[mask == 1].min() >= weight.abs()[mask == 0].max()
    output = demo_masks(build_model("lenet_300_100"), 0.2)["5.W"]  # what minilottery's side keeps of the output
    assert 0.2 ** peer.OUTPUT_EXPONENT == pytest.approx(output.mean(), abs=1e-3)


def test_both_sides_run_and_report(mnist_data):
    load_peer()  # skips without PyTorch
    result = run_vs_torch_script(TorchScriptConfig(runs=1, iterations=20, eval_every=10, density=0.5))
    for side in ("minilottery", "pytorch"):
        run = result["runs"][side][0]
        assert run["seconds"] > 0 and run["early_stop_iteration"] in (10, 20) and run["test_accuracy"] > 50
    assert result["median_ratio"] > 0
    assert f"compiled loops {compiled.describe()}" in bench_torch.format_vs_torch(result)
