"""``minilottery bench``: time a training step and inference on this machine, dense and sparse.

    minilottery bench                                   # LeNet-300-100 and Conv-2 on MNIST shapes, on the CPU
    minilottery bench --device gpu --json > bench.json  # machine-readable, on CuPy
    minilottery bench --models lenet_300_100 --compare-torch
    minilottery bench --vs-torch-script --torch-python ~/torchvenv/bin/python   # a whole demo network vs PyTorch

Prints, per model, the median time of a training step (forward, loss, backward, masked Adam; batch 60),
its GFLOP/s against the machine's measured float32 matmul peak, evaluation throughput and peak memory; then
dense versus sparse (SciPy CSR) inference of LeNet-300-100 pruned to 100%, 10%, 3.6% and 1% (``--no-sparse``
skips it). The measurement methods are described in ``minilottery/lab/bench.py``. Progress goes to stderr.
``--vs-torch-script`` instead trains one network of the demo in minilottery and in the PyTorch script
``benchmarks/torch_peer.py``, whole processes in turns (A B A B ...), and prints each run's wall time, the medians,
their spread and the median ratio (``minilottery/lab/bench_torch.py`` describes it).
Sizes beyond the options' bounds, or that would need more memory than the device has free, are refused
in one line before anything is allocated.
"""

from __future__ import annotations

import argparse
import json
import sys

from minilottery import backend
from minilottery.lab import threads
from minilottery.lab.bench import BenchConfig, format_report, run_bench
from minilottery.lab.bench_config import TorchScriptConfig
from minilottery.lab.bench_steps import default_peak_size
from minilottery.lab.bench_torch import TORCH_MISSING, format_vs_torch, run_vs_torch_script, torch_available
from minilottery.models import MODELS


def _csv(kind: type):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(item) for item in text.split(",") if item.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {kind.__name__}, got {text!r}") from None
    return parse


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds the ``bench`` command to the CLI's subparsers."""
    parser = subparsers.add_parser("bench", help="time training steps and dense/sparse inference on this machine",
                                   description=__doc__.split("\n\n")[0])
    defaults = BenchConfig()
    parser.add_argument("--models", type=_csv(str), default=defaults.models, metavar="LIST",
                        help=f"comma-separated models from {', '.join(MODELS)} (default: {','.join(defaults.models)})")
    parser.add_argument("--device", choices=["cpu", "gpu"], default=None, help="where to compute (default: cpu)")
    for option, what in (("--repeats", "timed repeats per measurement; the median is reported"),
                         ("--warmup", "untimed training steps first"), ("--batch-size", "training batch"),
                         ("--eval-batch-size", "evaluation batch")):
        default = getattr(defaults, option[2:].replace("-", "_"))  # --batch-size -> BenchConfig.batch_size
        parser.add_argument(option, type=int, default=default, help=f"{what} (default: {default})")
    parser.add_argument("--peak-size", type=int, default=defaults.peak_size,
                        help=f"side of the square matmul that measures the peak (default: {default_peak_size('cpu')} "
                             f"on cpu, {default_peak_size('gpu')} on gpu)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--sparse", dest="sparse", action="store_true", default=True,
                        help="include dense vs sparse LeNet inference (the default)")
    parser.add_argument("--no-sparse", dest="sparse", action="store_false", help="skip the sparse-inference section")
    parser.add_argument("--sparse-fractions", type=_csv(float), default=defaults.sparse_fractions, metavar="LIST",
                        help=f"fractions of the hidden weights kept (default: "
                             f"{','.join(f'{f:g}' for f in defaults.sparse_fractions)})")
    parser.add_argument("--compare-torch", action="store_true",
                        help="also time the same step in PyTorch, if it is installed")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help=f"seed of the weights and synthetic data (default: {defaults.seed})")
    script = TorchScriptConfig()
    group = parser.add_argument_group("whole process against PyTorch (--vs-torch-script)")
    group.add_argument("--vs-torch-script", action="store_true",
                       help="instead of the above: one network of the demo in minilottery and in "
                            "benchmarks/torch_peer.py, whole processes in turns; prints the median time ratio")
    group.add_argument("--runs", type=int, default=script.runs, help=f"runs of each side (default: {script.runs})")
    group.add_argument("--iterations", type=int, default=script.iterations,
                       help=f"training steps per run (default: {script.iterations}, the demo's)")
    group.add_argument("--eval-every", type=int, default=script.eval_every,
                       help=f"evaluate the whole validation and test sets every N iterations "
                            f"(default: {script.eval_every})")
    group.add_argument("--density", type=float, default=script.density,
                       help=f"fraction of the hidden layers' weights the mask keeps (default: {script.density:g}, "
                            f"every weight, masked as in round 0)")
    group.add_argument("--torch-python", default=None, metavar="PATH",
                       help="a Python interpreter that can import torch and numpy (default: this one)")
    group.add_argument("--data-dir", default=None, metavar="DIR",
                       help="the data root, or MNIST's own folder (default: $MINILOTTERY_DATA, else the "
                            "checkout's data/, else the user cache)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    threads.add_argument(parser, help=f"BLAS threads for the training steps, evaluation and dense inference "
                                      f"(default: ${threads.ENV}, else {threads.DEFAULT})")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs the benchmark and prints the table (or JSON); returns the exit code."""
    if args.vs_torch_script:
        return run_vs_torch(args)
    config = BenchConfig(
        models=tuple(args.models), device=args.device or backend.default_device(), repeats=args.repeats,
        warmup=args.warmup, batch_size=args.batch_size, eval_batch_size=args.eval_batch_size,
        peak_size=args.peak_size, memory=not args.no_memory, sparse=args.sparse,
        sparse_fractions=tuple(args.sparse_fractions), compare_torch=args.compare_torch, seed=args.seed,
    ).validate()
    if config.compare_torch and not torch_available():
        print(TORCH_MISSING, file=sys.stderr if args.json else sys.stdout)
    with threads.limit(args.threads) as n_threads:
        result = run_bench(config, log=lambda line: print(f"bench: {line}", file=sys.stderr, flush=True))
        result["threads"] = threads.describe()  # read inside the limit: the count the steps ran with
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_report(result))
        print(f"BLAS threads: {n_threads} (--threads), {result['threads']['blas']}")
    return 0


def run_vs_torch(args: argparse.Namespace) -> int:
    """``--vs-torch-script``: both sides in turns; prints the runs and the ratio (or JSON)."""
    config = TorchScriptConfig(runs=args.runs, iterations=args.iterations, eval_every=args.eval_every,
                               density=args.density, seed=args.seed, threads=threads.resolve(args.threads),
                               torch_python=args.torch_python, data_dir=args.data_dir).validate()
    result = run_vs_torch_script(config, log=lambda line: print(f"bench: {line}", file=sys.stderr, flush=True))
    print(json.dumps(result, indent=2) if args.json else format_vs_torch(result))
    return 0
