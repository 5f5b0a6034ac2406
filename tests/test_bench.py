"""``minilottery bench``: the result's schema and the CLI (correctness only; no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from minilottery.lab import bench_sparse
from minilottery.lab.bench import BenchConfig, run_bench
from minilottery.lab.bench_sparse import (
    check_same_predictions,
    magnitude_masks,
    mismatched_predictions,
    output_fraction,
    sparse_row,
)
from minilottery.lab.bench_steps import time_per_call, training_flops
from minilottery.lab.bench_torch import TORCH_MISSING
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
