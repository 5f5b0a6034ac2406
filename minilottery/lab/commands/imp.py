"""``minilottery imp``: find a winning ticket by iterative magnitude pruning (Frankle & Carbin 2019, Section 2).

    minilottery imp --preset lenet-quick --out runs/lenet-quick            # a few minutes on a CPU
    minilottery imp --preset lenet-paper --device gpu --out runs/lenet     # the paper's LeNet experiment
    minilottery imp --model lenet_300_100 --rounds 5 --iterations 1000 --reset rewind:100 --out runs/rw

Explicit options override the preset's values (presets: ``minilottery/lab/presets.py``); without ``--preset``
the settings are the paper's (Figure 2; ``IMPConfig`` and ``TrainConfig`` hold them) for the network.
The run is written to
``--out DIR`` as it goes (``minilottery/lab/run_folder.py``; the layout is in ``minilottery/lab/runs.py``);
running the same command again after an interruption, even ``kill -9``, continues after the last completed
round, and the same command with a larger ``--rounds`` (or a lower ``--target-percent``) extends a finished run.
It first prints its plan (``minilottery/lab/progress.py``: the rounds and the percent of weights they reach, the
arms, the trainings left, an estimated time), then one line per round under a progress bar of the whole run. At
the end it prints the results table and draws the figures into DIR/figures.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import sys
from typing import Any

from minilottery import backend
from minilottery.checks import check_int
from minilottery.data import LOADERS
from minilottery.imp import CONTROLS, IMPConfig, RoundResult
from minilottery.lab import threads
from minilottery.lab.arm_pool import ArmPool
from minilottery.lab.commands._checks import check_out_dir
from minilottery.lab.commands._options import (
    PRESET_NOTE,
    TRAINING_OPTIONS,
    add_kernels_option,
    add_run_options,
    add_training_options,
    add_workers_option,
)
from minilottery.lab.presets import PRESETS, config_from_options
from minilottery.lab.progress import Plan, RunBar, planned_percents, time_training
from minilottery.lab.run_folder import rounds_on_disk, run_imp_in_folder
from minilottery.lab.sparse_training import SparseKernels
from minilottery.lab.tables import format_table
from minilottery.prune import CONV_RATES
from minilottery.training import check_data


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds the ``imp`` command to the CLI's subparsers."""
    parser = subparsers.add_parser("imp", help="find a winning ticket by iterative magnitude pruning",
                                   description=__doc__.split("\n\n")[0])
    add_experiment_arguments(parser)
    add_kernels_option(parser)  # imp's own: trials trains in its workers, which take no kernels yet
    add_workers_option(parser)  # imp's own: trials' --workers spreads whole trials instead
    threads.add_argument(parser)
    parser.set_defaults(func=run, resumes=True)  # an interrupted run continues: cli.main says so
    return parser


def add_experiment_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of one IMP experiment (shared by ``imp`` and ``trials``); each help shows its default, and
    says so where a ``--preset`` replaces it (``PRESET_NOTE``)."""
    defaults = IMPConfig()  # the paper's settings
    note = PRESET_NOTE
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="start from a preset experiment; explicit options override it (default: none, the "
                             "paper's settings for the network)")
    parser.add_argument("--rounds", type=int, default=None,
                        help=f"pruning rounds after the dense round 0 (default: {defaults.rounds}{note}); with "
                             "--target-percent: at most; a larger --rounds extends a finished run")
    parser.add_argument("--target-percent", type=float, default=None, metavar="X",
                        help="stop once at most X%% of the weights remain (with --one-shot: prune straight to X%%) "
                             "(default: none: --rounds decides); a lower one extends a finished run")
    parser.add_argument("--prune-rate", type=float, default=None, metavar="P",
                        help=f"fraction of the remaining dense weights pruned per round "
                             f"(default: {defaults.prune_rate}, the paper's; the output layer at half of it{note})")
    parser.add_argument("--conv-rate", type=float, default=None, metavar="P",
                        help=f"fraction of the remaining conv weights pruned per round (default: the paper's: "
                             f"{CONV_RATES['conv2']}, conv6 {CONV_RATES['conv6']}{note})")
    parser.add_argument("--output-rate", type=float, default=None, metavar="P",
                        help=f"fraction of the remaining output weights pruned per round (default: --prune-rate / 2"
                             f"{note})")
    parser.add_argument("--global", dest="global_pruning", action="store_true", default=None,
                        help="one magnitude threshold over all layers pooled instead of per layer")
    parser.add_argument("--one-shot", action="store_true", default=None,
                        help="prune the trained dense network once, to --target-percent (or to where --rounds "
                             "rounds would get)")
    parser.add_argument("--reset", default=None, metavar="init|rewind:K",
                        help=f"reset survivors to θ0 (init, the paper) or to the weights at iteration K of the dense "
                             f"run (rewind:K) (default: {defaults.reset})")
    parser.add_argument("--controls", default=None, metavar="LIST",
                        help=f"comma-separated control arms from {','.join(CONTROLS)}; 'none' for none "
                             f"(default: none{note})")
    add_training_options(parser, seed_help="seed of θ0, the controls and the data order", preset=True)
    add_run_options(parser)
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="run folder: created if new, continued if it holds this run")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a run in DIR made with a different config (only the run's own files)")


def config_from_args(args: argparse.Namespace) -> IMPConfig:
    """The validated IMPConfig: the preset (or the model's paper settings), then every explicit option."""
    options: dict[str, Any] = {
        name: getattr(args, name)
        for name in ("rounds", "target_percent", "prune_rate", "conv_rate", "output_rate", "global_pruning",
                     "one_shot", "reset", *TRAINING_OPTIONS)
    }
    if args.controls is not None:
        if not args.controls.replace(",", "").strip():  # "" could mean none or the default: make the user say
            raise ValueError(f"--controls is empty ({args.controls!r}); give comma-separated arms from "
                             f"{','.join(CONTROLS)}, or 'none' for no control arm")
        options["controls"] = () if args.controls.strip().lower() == "none" else args.controls
    config = config_from_options(preset=args.preset, **options)
    if args.target_percent is not None and args.rounds is None:  # a target alone: as many rounds as it needs
        config = dataclasses.replace(config, rounds=None)
    return config.validate()


def load_data(dataset: str, data_dir: str | None) -> Any:
    """The data set for the run (a function of its own so that tests can substitute a small one)."""
    return LOADERS[dataset](data_dir)


def round_line(rnd: RoundResult, read_back: bool = False) -> str:
    """``round 3: 51.3% of weights remain; test accuracy at early stop: ticket 97.10% (stop 2400), ...``; a round
    read back from the run folder says so (``round 3 (read back from disk): ...``)."""
    parts = [f"{arm} {100 * r['test_accuracy_at_early_stop']:.2f}% (stop {r['early_stop_iteration']})"
             for arm, r in rnd.info["arms"].items()]
    where = " (read back from disk)" if read_back else ""
    return (f"round {rnd.index}{where}: {rnd.percent_remaining:.1f}% of weights remain; test accuracy at early "
            f"stop: " + ", ".join(parts))


def make_plan(config: IMPConfig, data: Any, args: argparse.Namespace, device: str, n_threads: int,
              folders: list[tuple[IMPConfig, Any]], **how: Any) -> Plan:
    """The plan of a run, or of trials: ``folders`` pairs each run's config with its folder. It is timed when
    anything is left to train; a folder holding another config's run fails first (ValueError, one line)."""
    check_data(data, config.train.batch_size)  # data too small for a batch fails before the timing
    read_back = [len(rounds_on_disk(folder, run_config, data, args.overwrite)) for run_config, folder in folders]
    plan = Plan(config, data, planned_percents(config, tuple(data.x_train.shape[1:])), read_back, device, n_threads,
                args.out, **how)
    if plan.left:
        plan.seconds_per_training = time_training(config, data, device, plan.steps)
    return plan


def run(args: argparse.Namespace) -> int:
    """Prints the plan, runs (or continues, or extends) the experiment under one progress bar, prints the table
    and draws the figures; returns the exit code."""
    from minilottery.data import DataError

    config = config_from_args(args)  # bad options fail before any data is loaded or DIR is touched
    check_int("--workers", args.workers, low=1, hint="processes that train a round's arms at once, e.g. 2")
    n_threads = threads.resolve(args.threads)
    device = backend.use(args.device).name if args.device else backend.default_device()
    check_out_dir(args.out)  # a file, a read-only or full disk at --out fails now, before the data loads
    try:
        data = load_data(config.dataset, args.data_dir)
    except DataError as exc:
        from minilottery.lab.cli import one_line

        print(f"minilottery {getattr(args, 'command', 'imp')}: error: {one_line(exc)}", file=sys.stderr)  # or demo
        return 1
    workers = min(args.workers, len(config.arms))  # more than a round's arms would idle
    with threads.limit(n_threads), contextlib.ExitStack() as stack:
        plan = make_plan(config, data, args, device, n_threads, [(config, args.out)], arm_workers=workers)
        print("\n".join(plan.lines()), flush=True)
        train_arms = None  # in turn, in this process
        if workers > 1 and plan.left:
            loader = functools.partial(load_data, config.dataset, args.data_dir)  # each worker reads its own
            train_arms = stack.enter_context(ArmPool(workers, loader, n_threads))
        with RunBar(plan.left, enabled=not args.no_progress) as bar:
            def trained(rnd: RoundResult) -> None:
                bar.write(round_line(rnd))
                bar.round_done(rnd)

            result = run_imp_in_folder(config, data, args.out, overwrite=args.overwrite, device=device,
                                       progress=not args.no_progress, on_round=trained,
                                       kernels=SparseKernels(args.sparse_kernels), train_arms=train_arms,
                                       on_read_back=lambda rnd: bar.write(round_line(rnd, read_back=True)))
    print()
    print(format_table(result.summary()))
    from minilottery.lab.plots import plot_run  # matplotlib loads only when figures are drawn

    print("figures:")
    for path in plot_run(args.out):
        print(f"  {path}")
    return 0
