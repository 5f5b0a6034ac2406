"""``minilottery trials``: K independent IMP experiments in parallel, with min/max error bars as in the paper.

    minilottery trials --preset lenet-quick --trials 3 --workers 2 --out runs/lenet-quick-3   # local processes
    minilottery trials --preset lenet-paper --trials 5 --scheduler 10.0.0.5:8786 --out /shared/runs/lenet

It takes every option of ``minilottery imp``; ``--seed s`` is the first trial's seed (trials use s, s+1, ...).
Each trial is its own run directory, OUT/seed_<s>, so running the same command again skips finished trials
and continues interrupted ones. At the end it prints the mean [min, max] table, writes OUT/summary.json and
OUT/summary.csv, and draws the figures with error bars into OUT/figures. ``--scheduler`` sends the trials
to an existing Dask cluster (pip install -e ".[dask]"); its workers must reach the data folder and OUT.
Every trial uses ``--threads N`` BLAS threads (default 1), wherever it runs, so trial s is bit-identical to
``minilottery imp --seed s --threads N`` on the same machine.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from minilottery import backend
from minilottery.checks import check_int
from minilottery.lab import threads
from minilottery.lab.commands import imp as imp_command
from minilottery.lab.commands._checks import check_out_dir
from minilottery.lab.tables import format_table

DASK_MISSING = ('--scheduler needs Dask\'s distributed package, which is not installed: '
                'pip install -e ".[dask]"')
CONNECT_TIMEOUT = "10s"  # how long --scheduler tries to reach the Dask scheduler before giving up


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("trials", help="run K independent IMP trials in parallel, with error bars",
                                   description=__doc__.split("\n\n")[0])
    imp_command.add_experiment_arguments(parser)
    parser.add_argument("--trials", type=int, default=5, metavar="K",
                        help="independent trials, seeds --seed .. --seed+K-1 (default: 5, as in the paper)")
    parser.add_argument("--workers", type=int, default=None, metavar="W",
                        help="local worker processes (default: min(K, cores // --threads); 1 runs them one by one "
                             "here)")
    parser.add_argument("--scheduler", default=None, metavar="HOST:PORT",
                        help="run the trials on this existing Dask cluster instead of local processes "
                             "(default: none: local processes)")
    threads.add_argument(parser, hidden_aliases=("--blas-threads",),
                         help=f"BLAS threads per trial, wherever it runs (default: ${threads.ENV}, else "
                              f"{threads.DEFAULT}); each trial equals `minilottery imp --threads N` exactly")
    parser.set_defaults(func=run, resumes=True)  # an interrupted run continues: cli.main says so
    return parser


@contextlib.contextmanager
def dask_executor(address: str) -> Iterator[Any]:
    """A ``concurrent.futures.Executor`` on the Dask cluster at ``address`` (the client closes on exit)."""
    try:
        from distributed import Client
    except ImportError:
        raise ValueError(DASK_MISSING) from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise ValueError(f"--scheduler {address}: cannot reach a Dask scheduler there ({exc})") from None
    with client:
        yield client.get_executor(pure=False)  # pure=False: never reuse a result by its arguments' hash


def default_workers(trials: int, threads_per_trial: int) -> int:
    """``--workers`` when it is not given: a process per trial, but no more than fit the cores at
    ``threads_per_trial`` BLAS threads each (workers * threads <= cores), and at least one."""
    return min(trials, max(1, (os.cpu_count() or 1) // threads_per_trial))


def run(args: argparse.Namespace) -> int:
    from minilottery.data import DataError
    from minilottery.lab.trials import run_trials, trial_config, trial_dir, trial_seeds

    config = imp_command.config_from_args(args)  # bad options fail before any data is loaded or OUT is touched
    check_int("--trials", args.trials, low=1)
    if args.workers is not None:
        check_int("--workers", args.workers, low=1)
    if args.scheduler is not None and not args.scheduler.strip():  # "" would quietly run locally instead
        raise ValueError("--scheduler is empty; give the Dask scheduler's HOST:PORT, or leave --scheduler out "
                         "to run on local processes")
    n_threads = threads.resolve(args.threads)
    workers = args.workers if args.workers is not None else default_workers(args.trials, n_threads)
    device = backend.use(args.device).name if args.device else backend.default_device()
    check_out_dir(args.out)  # a file, a read-only or full disk at --out fails now, before any trial starts
    # The workers read the data themselves: give them an absolute folder (a Dask worker's cwd is its own).
    data_dir = str(Path(args.data_dir).resolve()) if args.data_dir else None
    loader = functools.partial(imp_command.load_data, config.dataset, data_dir)
    where = f"Dask scheduler {args.scheduler}" if args.scheduler else \
        "this process" if workers == 1 else f"{workers} local processes"
    try:
        data = loader()  # for the plan: what is on disk, what is left, how long it should take
    except DataError as exc:
        from minilottery.lab.cli import one_line

        print(f"minilottery trials: error: {one_line(exc)}", file=sys.stderr)
        return 1
    seeds = trial_seeds(config.seed, args.trials)
    folders = [(trial_config(config, seed), trial_dir(args.out, seed)) for seed in seeds]
    with threads.limit(n_threads):
        plan = imp_command.make_plan(config, data, args, device, n_threads, folders, where=where,
                                     parallel=args.trials if args.scheduler else min(workers, args.trials))
    del data
    print("\n".join(plan.lines()), flush=True)
    with contextlib.ExitStack() as stack:
        executor = stack.enter_context(dask_executor(args.scheduler)) if args.scheduler else None
        try:
            result = run_trials(config, args.trials, args.out, loader, workers=workers, executor=executor,
                                device=device, threads=n_threads, overwrite=args.overwrite,
                                progress=not args.no_progress)
        except (DataError, RuntimeError) as exc:  # RuntimeError: a trial failed in its worker (the cause is named)
            from minilottery.lab.cli import one_line

            print(f"minilottery trials: error: {one_line(exc)}", file=sys.stderr)
            return 1
    print()
    print(format_table(result.summary))
    from minilottery.lab.plots import plot_run  # matplotlib loads only when figures are drawn

    print("figures:")
    for path in plot_run(args.out):
        print(f"  {path}")
    print(f"compare with the paper: minilottery check-paper {args.out}")
    return 0
