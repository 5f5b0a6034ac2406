"""``minilottery bench``: time a training step and inference on this machine, dense and sparse.

    minilottery bench                                   # LeNet-300-100 and Conv-2 on MNIST shapes, on the CPU
    minilottery bench --device gpu --json > bench.json  # machine-readable, on CuPy
    minilottery bench --models lenet_300_100 --compare-torch

Prints, per model, the median time of a training step (forward, loss, backward, masked Adam; batch 60),
its GFLOP/s against the machine's measured float32 matmul peak, evaluation throughput and peak memory; then
dense versus sparse (SciPy CSR) inference of LeNet-300-100 pruned to 100%, 10%, 3.6% and 1% (``--no-sparse``
skips it). The measurement methods are described in ``minilottery/lab/bench.py``. Progress goes to stderr.
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
from minilottery.lab.bench_steps import default_peak_size
from minilottery.lab.bench_torch import TORCH_MISSING, torch_available
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
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    threads.add_argument(parser, help=f"BLAS threads for the training steps, evaluation and dense inference "
                                      f"(default: ${threads.ENV}, else {threads.DEFAULT})")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs the benchmark and prints the table (or JSON); returns the exit code."""
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
