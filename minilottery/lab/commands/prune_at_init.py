"""``minilottery prune-at-init``: masks chosen at θ0 without training (SNIP, GraSP, SynFlow, random), trained.

    minilottery prune-at-init --run runs/lenet-quick --percent 21.1,7.0,3.6 --out runs/prune-at-init
    minilottery prune-at-init --percent 21.1,7.0 --iterations 5000 --method snip,synflow --out runs/pai

With ``--run``, every mask is chosen at the run's θ0 and trained with the run's settings, at the sparsities of its
rounds (those nearest ``--percent``, or all), ``random`` with its ticket's per-layer counts, and the run's ticket
and controls join the table and the figure. Without it, θ0 is the seed's and the training options apply. Writes
DIR/prune_at_init.json (a killed run continues when run again) and
DIR/figures/prune_at_init_accuracy_vs_weights.png; see ``minilottery/lab/prune_at_init.py``.
"""

from __future__ import annotations

import argparse

from minilottery import backend
from minilottery.checks import check_choices
from minilottery.lab import threads
from minilottery.lab.commands._checks import check_out_dir
from minilottery.lab.commands._options import TRAINING_OPTIONS, add_run_options, add_training_options
from minilottery.lab.prune_at_init import (
    DEFAULT_METHODS,
    EXAMPLES,
    GRASP_STEP,
    GRASP_TEMPERATURE,
    METHODS,
    SYNFLOW_ROUNDS,
)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("prune-at-init", help="prune at initialization (SNIP, GraSP, SynFlow) and train",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", "--methods", type=_methods, default=list(DEFAULT_METHODS), metavar="M[,M...]",
                        help=f"some of {', '.join(METHODS)}; M_shuffled is M's masks shuffled within each layer "
                             f"(default: {','.join(DEFAULT_METHODS)})")
    parser.add_argument("--run", default=None, metavar="RUN",
                        help="a finished `minilottery imp` run: its θ0, training settings, sparsities and ticket "
                             "(default: none; then give --percent)")
    parser.add_argument("--percent", "--percents", type=_percents, default=None, metavar="P[,P...]",
                        help="percents of weights remaining, e.g. 21.1,7.0,3.6; with --run its nearest rounds "
                             "(default: every pruned round of --run)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for prune_at_init.json and the figure")
    parser.add_argument("--examples", type=int, default=EXAMPLES,
                        help=f"training examples SNIP's and GraSP's gradients average over (default: {EXAMPLES})")
    parser.add_argument("--synflow-rounds", type=int, default=SYNFLOW_ROUNDS,
                        help=f"SynFlow's pruning rounds (default: {SYNFLOW_ROUNDS}, the paper's)")
    parser.add_argument("--grasp-temperature", type=float, default=GRASP_TEMPERATURE,
                        help=f"GraSP divides the logits by this (default: {GRASP_TEMPERATURE:g}, as its authors' "
                             f"code; 1 is the plain loss)")
    parser.add_argument("--grasp-step", type=float, default=GRASP_STEP,
                        help=f"length of GraSP's finite-difference step along the gradient (default: {GRASP_STEP:g})")
    add_training_options(parser, seed_help="seed of θ0 and of the data order, without --run")
    add_run_options(parser)
    threads.add_argument(parser)
    parser.set_defaults(func=run, resumes=True)  # a killed run continues: cli.main says so
    return parser


def _methods(text: str) -> list[str]:
    """``--method``'s type: comma-separated names of ``METHODS``, or argparse's one-line usage error."""
    methods = [part.strip() for part in text.split(",") if part.strip()]
    try:
        return list(dict.fromkeys(check_choices("--method", methods, METHODS)))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _percents(text: str) -> list[float]:
    """``--percent``'s type: comma-separated percents in (0, 100), or argparse's one-line usage error."""
    try:
        percents = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected percents such as 21.1,7.0,3.6, got {text!r}") from None
    if not percents or not all(0 < p < 100 for p in percents):
        raise argparse.ArgumentTypeError(f"expected percents between 0 and 100 (exclusive), got {text!r}")
    return percents


def run(args: argparse.Namespace) -> int:
    from minilottery.lab import runs
    from minilottery.lab.commands import imp as imp_command
    from minilottery.lab.presets import config_from_options
    from minilottery.lab.prune_at_init import format_prune_at_init, plot_prune_at_init, run_prune_at_init
    from minilottery.lab.transfer import SourceRun

    n_threads = threads.resolve(args.threads)  # options first, then the folders they name
    given = [f"--{name.replace('_', '-')}" for name in TRAINING_OPTIONS if getattr(args, name) is not None]
    for option, value, low in (("--examples", args.examples, 1), ("--synflow-rounds", args.synflow_rounds, 1)):
        if value < low:
            raise ValueError(f"{option} must be at least {low}, got {value}")
    if not args.grasp_step > 0 or not args.grasp_temperature > 0:
        raise ValueError(f"--grasp-step and --grasp-temperature must be positive, got {args.grasp_step:g} and "
                         f"{args.grasp_temperature:g}")
    if args.run is not None:
        if given:
            raise ValueError(f"{', '.join(given)}: --run trains with the run's own settings; leave {given[0]} out")
        config = SourceRun.read(args.run).config  # a folder that is not a run: one line, before any data loads
    elif args.percent is None:
        raise ValueError("give --run RUN (its sparsities) or --percent P[,P...] (e.g. --percent 21.1,7.0,3.6)")
    else:
        config = config_from_options(**{name: getattr(args, name) for name in TRAINING_OPTIONS}).validate()
    device = backend.use(args.device).name if args.device else backend.default_device()
    out = check_out_dir(args.out)
    data = imp_command.load_data(config.dataset, args.data_dir)
    print(f"prune-at-init: {', '.join(args.method)} on {config.model} ({config.dataset}), "
          f"{config.train.iterations} iterations each, device {device}, {n_threads} BLAS thread(s); writing {out}",
          flush=True)
    with threads.limit(n_threads):
        record = run_prune_at_init(data, out, args.method, run=args.run, percents=args.percent, config=config,
                                   examples=args.examples, synflow_rounds=args.synflow_rounds,
                                   temperature=args.grasp_temperature, step=args.grasp_step, device=device,
                                   progress=not args.no_progress)
    print(format_prune_at_init(record))
    for path in plot_prune_at_init(record, runs.check_real_folder(out / runs.FIGURES_FOLDER, out)):
        if path.suffix == ".png":
            print(f"figure: {path}")
    return 0
