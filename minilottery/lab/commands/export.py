"""``minilottery export RUN --out FILE``: one ticket of an IMP run as a .safetensors file PyTorch can load.

    minilottery export runs/lenet-quick --out lenet-7.0.safetensors                  # the last round's ticket
    minilottery export runs/lenet-quick --round 7 --out lenet-21.1.safetensors       # the ticket at 21.1%
    minilottery export runs/lenet-quick --round 7 --trained --out lenet-21.1-trained.safetensors

The file holds, for each weighted layer i, ``i.weight_orig``, ``i.weight_mask`` and ``i.bias``: the names
``torch.nn.utils.prune`` gives a pruned ``nn.Sequential`` with the same layers, so ``load_state_dict`` reads it
(README, "Tickets as files"). ``minilottery.load_ticket(FILE)`` reads it back as a masked network. The format
and its metadata: ``minilottery/ticket_file.py``.
"""

from __future__ import annotations

import argparse

from minilottery.imp_config import ARMS


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("export", help="write one ticket of a run as a .safetensors file PyTorch can load",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", metavar="RUN", help="a `minilottery imp` run folder")
    parser.add_argument("--round", type=int, default=None, metavar="R",
                        help="the round whose ticket to write (default: the last completed round)")
    parser.add_argument("--arm", choices=ARMS, default="ticket",
                        help="the network of that round: the ticket or a control the run trained (default: ticket)")
    parser.add_argument("--trained", action="store_true",
                        help="store the trained weights as weight_orig (default: off, the weights the ticket starts "
                             "from: θ0, or θk when the run rewound)")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="the file to write, e.g. ticket.safetensors (required; no default)")
    parser.add_argument("--overwrite", action="store_true", help="replace FILE if it exists (default: off)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from minilottery.lab.export import export_ticket

    info = export_ticket(args.run_dir, args.out, args.round, args.arm, trained=args.trained, overwrite=args.overwrite)
    accuracy = info.test_accuracy_at_early_stop
    shown = "-" if accuracy is None else f"{100 * accuracy:.2f}%"
    print(f"wrote {args.out}: {info.model} {info.arm} of round {info.round} of {args.run_dir} "
          f"({info.percent_remaining:.1f}% of weights remain; test accuracy at early stop {shown}); "
          f"weight_orig holds its {info.weight_orig} weights")
    return 0
