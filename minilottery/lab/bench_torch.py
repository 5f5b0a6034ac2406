"""Comparisons with PyTorch: the training step (``--compare-torch``) and a whole training script
(``--vs-torch-script``).

PyTorch is an optional comparison, never a dependency: it is imported only inside the functions of the step, and
the script runs in an interpreter of the user's choice (``--torch-python``).

* ``minilottery bench --compare-torch``: the same masked Adam training step in PyTorch, timed in alternating blocks
  with minilottery's (``compare_with_torch``).
* ``minilottery bench --vs-torch-script``: one network of the demo (``minilottery demo``: LeNet-300-100 on MNIST,
  5,000 iterations, the whole validation and test sets evaluated every 100), whole process against whole process.
  PyTorch's side is ``benchmarks/torch_peer.py``, what a PyTorch user would write (``nn.Sequential``,
  ``custom_from_mask``, Adam); minilottery's side is this module run as a script, ``python -m
  minilottery.lab.bench_torch`` (``main``: ``load_mnist``, ``build_model``, the masks, ``train``, as ``imp`` trains
  each network). Both get the same options (``script_options``), the same data folder and the same thread count
  (``thread_env``), and they run alternately, A B A B ... (``run_alternately``), so that a change in the
  machine's load falls on both alike. A run's wall time is taken from before its process starts to after it
  exits: imports, data loading, training and evaluations. ``summarize`` gives each side's median, minimum,
  maximum and spread, and the median over the pairs of minilottery's time / PyTorch's time.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from minilottery import compiled
from minilottery.data import load_mnist, mnist
from minilottery.lab import threads
from minilottery.lab.bench_steps import (
    INPUT_SHAPE,
    LR,
    MIN_BLOCK_SECONDS,
    minilottery_step,
    synthetic_batches,
    time_per_call,
)
from minilottery.layers import Conv2d, Dense, Flatten, MaxPool2d, ReLU, Sequential
from minilottery.models import build_model
from minilottery.prune import DENSE_RATE, default_rates, full_masks, magnitude_prune, one_shot_rates
from minilottery.training import TrainConfig, TrainResult, train

if TYPE_CHECKING:  # for the annotations only: bench.py imports this module
    from minilottery.lab.bench_config import BenchConfig, TorchScriptConfig

TORCH_MISSING = "PyTorch is not installed: skipping --compare-torch (pip install torch to compare)"
# checkout root / benchmarks / torch_peer.py: minilottery/lab/bench_torch.py -> minilottery/lab -> minilottery -> root
PEER_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "torch_peer.py"
MODEL = "lenet_300_100"  # the demo's network
SIDES = ("minilottery", "pytorch")  # the order of each pair: A B A B ...
# Every BLAS and OpenMP library a side may load reads its thread count from one of these when it starts.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MINILOTTERY_THREADS")
RESULT_LINE = re.compile(r"early stopping at iteration (\d+) .*test accuracy ([\d.]+)%")  # both sides print it


def torch_available() -> bool:
    """True when ``import torch`` works."""
    try:
        import torch  # an optional comparison, never a dependency
        del torch
    except ImportError:
        return False
    return True


def torch_network(name: str, seed: int) -> Any:
    """Model ``name`` as a ``torch.nn.Sequential`` on the host, with the same initial weights as ours."""
    import torch

    modules = []
    for layer in build_model(name, INPUT_SHAPE, seed=seed).layers:
        if isinstance(layer, Dense):
            module = torch.nn.Linear(layer.in_features, layer.out_features)
        elif isinstance(layer, Conv2d):
            module = torch.nn.Conv2d(layer.in_channels, layer.out_channels, (layer.kh, layer.kw),
                                     stride=layer.stride, padding=layer.padding)
        elif isinstance(layer, MaxPool2d):
            module = torch.nn.MaxPool2d((layer.kh, layer.kw), stride=(layer.sh, layer.sw))
        elif isinstance(layer, ReLU):
            module = torch.nn.ReLU()
        elif isinstance(layer, Flatten):
            module = torch.nn.Flatten()
        else:
            raise ValueError(f"--compare-torch: no PyTorch counterpart for {layer!r}")
        if layer.params:
            with torch.no_grad():
                module.weight.copy_(torch.from_numpy(layer.params["W"]))
                module.bias.copy_(torch.from_numpy(layer.params["b"]))
        modules.append(module)
    return torch.nn.Sequential(*modules)


def torch_step(name: str, device: str, config: BenchConfig) -> tuple[Callable[[], None], Callable[[], None]]:
    """PyTorch's masked Adam training step for model ``name`` on ``device`` and its sync; needs ``torch``.

    On the CPU PyTorch computes with as many threads as minilottery's BLAS has now (``threads.describe``, inside
    the bench's ``--threads`` limit): PyTorch's own default is one per core, which would compare two cores with one.
    """
    import torch

    if device != "gpu":
        torch.set_num_threads(threads.describe()["threads"] or 1)
    tdev = torch.device("cuda" if device == "gpu" else "cpu")
    net = torch_network(name, config.seed).to(tdev)
    masks = {p: torch.ones_like(p) for n, p in net.named_parameters() if n.endswith("weight")}
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    batches = [(torch.from_numpy(x).to(tdev), torch.from_numpy(y).to(tdev))
               for x, y in synthetic_batches("cpu", config.batch_size, 10, config.seed)]
    batch_cycle = itertools.cycle(batches)

    def step() -> None:
        x, y = next(batch_cycle)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        with torch.no_grad():
            for p, m in masks.items():
                p.grad.mul_(m)  # pruned weights get no gradient ...
        optimizer.step()
        with torch.no_grad():
            for p, m in masks.items():
                p.mul_(m)  # ... and stay exactly zero

    return step, (torch.cuda.synchronize if device == "gpu" else (lambda: None))


def compare_with_torch(name: str, device: str, config: BenchConfig) -> dict[str, Any]:
    """minilottery's training step and PyTorch's, timed in alternating blocks (ours, theirs, ours, ...).

    Each of ``config.repeats`` pairs times the same number of steps on each side (as many as make one of our
    blocks last ``MIN_BLOCK_SECONDS``), so a change in the machine's load falls on both sides of a pair alike.
    The ratio is the median over the pairs of our time / PyTorch's; its spread is the pairs' quartiles.
    """
    import torch

    ours, our_sync = minilottery_step(name, device, config)
    theirs, their_sync = torch_step(name, device, config)
    for _ in range(config.warmup):
        ours()
        theirs()
    calls = max(1, math.ceil(MIN_BLOCK_SECONDS / max(time_per_call(ours, our_sync, 1)[0][0], 1e-6)))
    our_ms, their_ms = [], []
    for _ in range(config.repeats):
        our_ms.append(1e3 * time_per_call(ours, our_sync, 1, warmup=0, min_seconds=0, calls=calls)[0][0])
        their_ms.append(1e3 * time_per_call(theirs, their_sync, 1, warmup=0, min_seconds=0, calls=calls)[0][0])
    ratios = [a / b for a, b in zip(our_ms, their_ms)]
    quartiles = np.percentile(ratios, [25, 50, 75])
    return {"torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
            "torch_ms_per_step": statistics.median(their_ms), "paired_ms_per_step": statistics.median(our_ms),
            "ratio_vs_torch": float(quartiles[1]), "ratio_vs_torch_spread": [float(quartiles[0]),
                                                                              float(quartiles[2])],
            "torch_pairs": config.repeats, "torch_steps_per_block": calls}


# -- --vs-torch-script: minilottery's side ------------------------------------------------------------------


def demo_masks(model: Sequential, density: float) -> dict[str, np.ndarray]:
    """Magnitude masks of ``model``'s current weights where the demo's rounds would leave them: the hidden layers
    keep ``density`` of their weights, the output layer (pruned at half the rate) more.

    After r rounds of IMP the hidden layers keep ``(1 - DENSE_RATE) ** r`` = ``density``; ``one_shot_rates``
    prunes every layer at once to what those r rounds leave (``density`` 1: r = 0, every weight kept).
    """
    rates = default_rates(MODEL, model)  # name -> the fraction one round prunes
    weights = {name: model.parameters()[name] for name in rates}
    rounds = math.log(density) / math.log(1.0 - DENSE_RATE)
    at_once = one_shot_rates(rates, {name: w.size for name, w in weights.items()}, rounds=rounds)
    return magnitude_prune(weights, full_masks(weights), at_once)


def train_one(iterations: int, eval_every: int, density: float, seed: int, data_dir: str | None,
              n_threads: int) -> TrainResult:
    """One network of the demo, as ``imp`` trains it: LeNet-300-100 with masks at ``density`` (all ones at 1, as
    in round 0), the paper's training (Adam 1.2e-3, batch 60) for ``iterations`` steps, evaluated every
    ``eval_every``, on ``n_threads`` BLAS threads."""
    config = TrainConfig.paper(MODEL, iterations=iterations, eval_every=eval_every, seed=seed).validate()
    data = load_mnist(data_dir, download=False)
    model = build_model(MODEL, tuple(data.x_train.shape[1:]), seed=seed)  # (C, H, W)
    model.set_masks(demo_masks(model, density))
    with threads.limit(n_threads):
        return train(model, data, config, progress=False)


def script_parser() -> argparse.ArgumentParser:
    """The options of ``main``: those of ``benchmarks/torch_peer.py``, all given by ``script_options``."""
    parser = argparse.ArgumentParser(prog="python -m minilottery.lab.bench_torch",
                                     description="one network of the demo, trained by minilottery")
    parser.add_argument("--data", default=None, help="the data root or MNIST's folder (default: minilottery's)")
    for option, kind in (("--iterations", int), ("--eval-every", int), ("--density", float), ("--seed", int),
                         ("--threads", int)):  # TorchScriptConfig's values, with no defaults of their own
        parser.add_argument(option, type=kind, required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minilottery.lab.bench_torch``: minilottery's side of ``--vs-torch-script``; the same options
    and the same two printed lines as ``benchmarks/torch_peer.py``."""
    args = script_parser().parse_args(argv)
    started = time.perf_counter()
    result = train_one(args.iterations, args.eval_every, args.density, args.seed, args.data, args.threads)
    print(f"early stopping at iteration {result.early_stop_iteration} (minimum validation loss): "
          f"test accuracy {100 * result.test_accuracy_at_early_stop:.2f}%")
    print(f"after {args.iterations} iterations: test accuracy {100 * result.final_test_accuracy:.2f}% "
          f"({time.perf_counter() - started:.1f} s, numpy {np.__version__}, {args.threads} thread(s))")
    return 0


# -- --vs-torch-script: the two sides, alternately --------------------------------------------------------


def torch_missing(python: str) -> str:
    """The one-line error when ``python`` cannot import torch (or is no interpreter at all)."""
    return (f"--vs-torch-script: {python} cannot import torch; install PyTorch in an environment of its own "
            f"(python -m venv ~/torchvenv && ~/torchvenv/bin/pip install torch numpy) and pass "
            f"--torch-python ~/torchvenv/bin/python")


def check_torch(python: str, run: Callable[..., Any] = subprocess.run) -> str:
    """PyTorch's version as ``python`` imports it; a one-line ValueError (``torch_missing``) when it cannot."""
    try:
        done = run([python, "-c", "import numpy, torch; print(torch.__version__)"], capture_output=True, text=True)
    except OSError:  # no such file, or not executable
        raise ValueError(torch_missing(python)) from None
    if done.returncode != 0:
        raise ValueError(torch_missing(python))
    return done.stdout.strip()


def peer_script() -> Path:
    """``benchmarks/torch_peer.py`` of this checkout; a one-line ValueError where minilottery is installed
    without its source tree."""
    if not PEER_SCRIPT.is_file():
        raise ValueError(f"--vs-torch-script runs benchmarks/torch_peer.py of a source checkout (git clone the "
                         f"repository and pip install -e it); it is not at {PEER_SCRIPT}")
    return PEER_SCRIPT


def script_options(config: TorchScriptConfig, data_folder: str) -> list[str]:
    """The options both sides get, the same."""
    return ["--data", data_folder, "--iterations", str(config.iterations), "--eval-every", str(config.eval_every),
            "--density", repr(config.density), "--seed", str(config.seed), "--threads", str(config.threads)]


def commands(config: TorchScriptConfig, data_folder: str, torch_python: str, script: Path) -> dict[str, list[str]]:
    """Side -> its command line: this interpreter running ``main``, and ``torch_python`` running ``script``."""
    options = script_options(config, data_folder)
    return {"minilottery": [sys.executable, "-m", "minilottery.lab.bench_torch", *options],
            "pytorch": [torch_python, str(script), *options]}


def thread_env(n_threads: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with every ``THREAD_VARIABLES`` set to ``n_threads``."""
    return {**(os.environ if base is None else base), **{name: str(n_threads) for name in THREAD_VARIABLES}}


def time_process(side: str, command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """(wall seconds from start to exit, stdout) of one run; a one-line ValueError when it fails."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ValueError(f"--vs-torch-script: the {side} run failed (exit {done.returncode}): {last}")
    return seconds, done.stdout


def parse_result(stdout: str) -> dict[str, Any]:
    """The early-stop iteration and the test accuracy (%) there, from a side's printed line (None if absent)."""
    found = RESULT_LINE.search(stdout)
    return {"early_stop_iteration": int(found[1]) if found else None,
            "test_accuracy": float(found[2]) if found else None}


def run_alternately(commands: Mapping[str, list[str]], runs: int, env: dict[str, str],
                    timer: Callable[[str, list[str], dict[str, str]], tuple[float, str]] = time_process,
                    log: Callable[[str], None] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Runs the sides in turns, A B A B ..., ``runs`` times each.

    Returns:
        side -> one dict per run, in order: ``seconds`` and what ``parse_result`` read from its output.
    """
    say = log or (lambda message: None)
    done: dict[str, list[dict[str, Any]]] = {side: [] for side in commands}
    for i, side in itertools.product(range(runs), commands):
        say(f"run {i + 1}/{runs}: {side}")
        seconds, stdout = timer(side, commands[side], env)
        done[side].append({"seconds": seconds, **parse_result(stdout)})
    return done


def summarize(seconds: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """Each side's median, minimum, maximum and spread ((max - min) / median), and minilottery's time over
    PyTorch's: per pair (run i of each), their median (the headline) and the ratio of the medians."""
    sides = {}
    for side, times in seconds.items():
        median = statistics.median(times)
        sides[side] = {"median": median, "min": min(times), "max": max(times),
                       "spread": (max(times) - min(times)) / median}
    ratios = [ours / theirs for ours, theirs in zip(seconds["minilottery"], seconds["pytorch"])]
    return {"sides": sides, "pair_ratios": ratios, "median_ratio": statistics.median(ratios),
            "ratio_of_medians": sides["minilottery"]["median"] / sides["pytorch"]["median"]}


def run_vs_torch_script(config: TorchScriptConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Checks PyTorch, the script and the data, then runs both sides alternately (``time_process``); a JSON-able
    dict."""
    config.validate()
    torch_python = config.torch_python or sys.executable
    torch_version = check_torch(torch_python)  # before anything is run: the most likely thing to be missing
    script = peer_script()
    data_folder = str(mnist.download_files(config.data_dir, progress=False)[0].parent)  # verified, both sides'
    lines = commands(config, data_folder, torch_python, script)
    runs = run_alternately(lines, config.runs, thread_env(config.threads), time_process, log)
    result = summarize({side: [run["seconds"] for run in runs[side]] for side in lines})
    return {"config": asdict(config), "torch_python": torch_python, "torch_version": torch_version,
            "numpy_version": np.__version__, "compiled": compiled.describe(), "commands": lines, "runs": runs,
            **result}


def format_vs_torch(result: dict[str, Any]) -> str:
    """The human-readable report of ``run_vs_torch_script``'s result."""
    c = result["config"]
    lines = [f"one network of the demo: LeNet-300-100, {c['iterations']:,} iterations, evaluation every "
             f"{c['eval_every']}, density {c['density']:g}, {c['threads']} thread(s); whole processes, A B A B",
             f"  minilottery's side: {result['commands']['minilottery'][0]}, compiled loops {result['compiled']}",
             f"  {'run':>4}{'minilottery s':>15}{'PyTorch s':>12}{'ratio':>8}"]
    for i, ratio in enumerate(result["pair_ratios"]):
        ours, theirs = result["runs"]["minilottery"][i], result["runs"]["pytorch"][i]
        lines.append(f"  {i + 1:>4}{ours['seconds']:>15.2f}{theirs['seconds']:>12.2f}{ratio:>8.2f}")
    for side, name in zip(SIDES, ("minilottery", f"PyTorch {result['torch_version']}")):
        s, last = result["sides"][side], result["runs"][side][-1]
        stop = (f"; early stop at {last['early_stop_iteration']}, test accuracy {last['test_accuracy']:.2f}%"
                if last["early_stop_iteration"] is not None else "")
        lines.append(f"  {name}: median {s['median']:.2f} s [{s['min']:.2f}, {s['max']:.2f}], spread "
                     f"{s['spread']:.0%}{stop}")
    lines.append(f"minilottery takes {result['median_ratio']:.2f}x PyTorch's wall time (median of "
                 f"{len(result['pair_ratios'])} pairs; ratio of the medians {result['ratio_of_medians']:.2f}x)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
