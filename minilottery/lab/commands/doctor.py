"""``minilottery doctor``: prove this install: versions, BLAS, data, the device, gradients and a training step.

    minilottery doctor                  # the CPU: a few seconds
    minilottery doctor --device gpu     # adds CuPy, CUDA, the GPU, NVRTC, cuBLAS and cuRAND; checks run on the GPU

Prints one line per check, ``ok``, ``note`` (worth knowing, nothing wrong: e.g. a data set not downloaded yet) or
``problem`` (with its fix), then a summary line. Exits 1 when there is a problem, else 0. The checks themselves
are in ``minilottery/lab/doctor.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import time

from minilottery import backend
from minilottery.data.paths import ENV_VAR

DEVICES = ("cpu", "gpu")
TEST_DEVICE = "strict"  # not in --help: the CuPy-like strict backend of minilottery.testing, for the tests


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("doctor", help="check the install: versions, data, device, gradients",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", type=_device, default=None, metavar="{cpu,gpu}",
                        help="the device whose gradients and training step are checked (default: "
                             "$MINILOTTERY_DEVICE, else cpu)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help=f"the data root to check (default: ${ENV_VAR}, else the checkout's data/, else the "
                             f"user cache)")
    parser.set_defaults(func=run)
    return parser


def _device(text: str) -> str:
    """``--device``'s type: cpu or gpu (or the hidden test device), else argparse's one-line usage error."""
    if text not in (*DEVICES, TEST_DEVICE):
        raise argparse.ArgumentTypeError(f"expected {' or '.join(DEVICES)}, got {text!r}")
    return text


def run(args: argparse.Namespace) -> int:
    from minilottery.lab.doctor import PROBLEM, run_checks, summary

    start = time.perf_counter()
    device = args.device or backend.default_device()
    if device == TEST_DEVICE:
        from minilottery.testing import strict_device

        registered = strict_device(TEST_DEVICE)
    else:
        registered = contextlib.nullcontext(device)
    checks = []
    with registered as device:
        for check in run_checks(device, args.data_dir):
            print(check.line(), flush=True)  # as each is done: a slow or stuck check shows where it is
            checks.append(check)
    print(summary(checks, device, time.perf_counter() - start))
    return 1 if any(check.status == PROBLEM for check in checks) else 0
