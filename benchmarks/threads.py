"""How many BLAS threads should a process use? Times a training step at each setting, idle and beside busy processes.

    python benchmarks/threads.py                  # the README's measurement: 1-3 minutes on 2 cores
    python benchmarks/threads.py --quick          # a smoke test: under a minute
    python benchmarks/threads.py --loads 0,1,2 --json > threads.json

What is timed: ``minilottery.training.train_step`` (forward, loss, backward, masked Adam) of LeNet-300-100 and
Conv-2 on batches of 60 MNIST-shaped images, with all-ones masks, as ``minilottery bench`` does. Each
measurement runs in a fresh Python process (so that an OpenBLAS variable such as ``OPENBLAS_THREAD_TIMEOUT``,
read when NumPy loads, takes effect), which limits BLAS with ``minilottery.lab.threads.limit``, warms up
(``--warmup`` steps, at most 1 s), then times each step on its own until ``--steps`` steps or ``--seconds``
seconds, whichever comes first.

The settings: ``--threads`` counts (default 1 and 2), plus, for each count above 1, the same count with
``OPENBLAS_THREAD_TIMEOUT=T`` for each T of ``--timeouts`` (OpenBLAS's idle threads spin 2**T cycles before
they sleep; its default is 28). The loads: ``--loads`` numbers of competing CPU-bound processes
(``python -c "while True: pass"``), started before and stopped after each block. Settings and loads run in
turns, A B A B ... for ``--rounds`` rounds, so a change in the machine's own load falls on every setting alike;
each row reports the median, minimum and maximum over all its steps, and its ratio to one thread, idle.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from minilottery.checks import check_int

MODELS = ("lenet_300_100", "conv2")
BATCH = 60
BUSY = "while True: pass"
WARMUP_SECONDS = 1.0  # the warm-up stops after --warmup steps or this long (Conv-2 steps are slow)


def child(model_name: str, threads: int, steps: int, seconds: float, warmup: int) -> dict:
    """In the measuring process: per-step times (seconds) of ``model_name``'s training step at ``threads``."""
    import numpy as np

    from minilottery.lab import threads as blas_threads
    from minilottery.models import build_model, weight_names
    from minilottery.optim import make_optimizer
    from minilottery.training import train_step

    with blas_threads.limit(threads):
        model = build_model(model_name, (1, 28, 28), seed=0)
        params = model.parameters()
        model.set_masks({w: np.ones_like(params[w]) for w in weight_names(model)})  # the masked code paths run
        optimizer = make_optimizer("adam", model, lr=1.2e-3)
        rng = np.random.default_rng(0)
        batches = [(rng.random((BATCH, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, BATCH).astype(np.int64))
                   for _ in range(10)]  # (60, 1, 28, 28), (60,): cycled, as training would
        warm_until = time.perf_counter() + WARMUP_SECONDS
        for i in range(max(1, warmup)):  # thread start-up, first-touch of buffers, caches
            train_step(model, optimizer, *batches[i % len(batches)])
            if time.perf_counter() > warm_until:
                break
        times: list[float] = []
        deadline = time.perf_counter() + seconds
        while len(times) < steps and (not times or time.perf_counter() < deadline):
            start = time.perf_counter()
            train_step(model, optimizer, *batches[len(times) % len(batches)])
            times.append(time.perf_counter() - start)
        return {"times": times, **blas_threads.describe()}


def measure(model: str, threads: int, env: dict[str, str], args: argparse.Namespace) -> dict:
    """Runs ``child`` in a fresh process with ``env`` added; returns its result."""
    command = [sys.executable, __file__, "--child", model, str(threads), str(args.steps), str(args.seconds),
               str(args.warmup)]
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def start_load(count: int) -> list[subprocess.Popen]:
    """``count`` busy Python processes, each keeping one core at 100%."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(count)]
    time.sleep(0.3 if procs else 0)  # let them get going
    return procs


def stop_load(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.kill()
        proc.wait()


def settings(thread_counts: list[int], timeouts: list[int]) -> list[tuple[str, int, dict[str, str]]]:
    """(label, threads, extra environment) for each setting."""
    found = [(f"threads={n}", n, {}) for n in thread_counts]
    found += [(f"threads={n}, OPENBLAS_THREAD_TIMEOUT={t}", n, {"OPENBLAS_THREAD_TIMEOUT": str(t)})
              for n in thread_counts if n > 1 for t in timeouts]
    return found


def run(args: argparse.Namespace) -> dict:
    chosen = settings(args.threads, args.timeouts)
    times: dict[tuple[str, str, int], list[float]] = {}
    info: dict = {}
    blocks = args.rounds * len(args.loads) * len(args.models) * len(chosen)
    done = 0
    for _ in range(args.rounds):
        for load in args.loads:
            procs = start_load(load)
            try:
                for model in args.models:
                    for label, n, env in chosen:
                        result = measure(model, n, env, args)
                        times.setdefault((model, label, load), []).extend(result.pop("times"))
                        info = result
                        done += 1
                        print(f"[{done}/{blocks}] {model}, {label}, {load} busy", file=sys.stderr, flush=True)
            finally:
                stop_load(procs)
    rows = []
    for (model, label, load), values in times.items():
        base = statistics.median(times[(model, chosen[0][0], 0)]) if (model, chosen[0][0], 0) in times else None
        median = statistics.median(values)
        rows.append({"model": model, "setting": label, "busy_processes": load, "steps": len(values),
                     "median_ms": 1e3 * median, "min_ms": 1e3 * min(values), "max_ms": 1e3 * max(values),
                     "vs_first_setting_idle": None if base is None else median / base})
    rows.sort(key=lambda r: (args.models.index(r["model"]), r["busy_processes"],
                             [c[0] for c in chosen].index(r["setting"])))
    return {"cpu_count": os.cpu_count(), "blas": info.get("blas"), "architecture": info.get("architecture"),
            "rounds": args.rounds, "warmup": args.warmup, "batch": BATCH, "rows": rows}


def format_table(result: dict) -> str:
    lines = [f"{result['cpu_count']} cores, {result['blas']} ({result['architecture']}); training step, batch "
             f"{result['batch']}, {result['rounds']} alternating rounds; per-step times over all rounds",
             f"{'model':<15}{'setting':<42}{'busy':>5}{'steps':>7}{'median ms':>11}{'min':>8}{'max':>9}"
             f"{'vs 1st idle':>13}"]
    for r in result["rows"]:
        ratio = "-" if r["vs_first_setting_idle"] is None else f"{r['vs_first_setting_idle']:.2f}x"
        lines.append(f"{r['model']:<15}{r['setting']:<42}{r['busy_processes']:>5}{r['steps']:>7}"
                     f"{r['median_ms']:>11.2f}{r['min_ms']:>8.2f}{r['max_ms']:>9.2f}{ratio:>13}")
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers, got {text!r}") from None
    if values and min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:  # the measuring process (see ``measure``)
        model, threads, steps, seconds, warmup = argv[1:]
        print(json.dumps(child(model, int(threads), int(steps), float(seconds), int(warmup))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=lambda t: t.split(","), default=list(MODELS), metavar="LIST",
                        help=f"comma-separated, from {','.join(MODELS)} (default: both)")
    parser.add_argument("--threads", type=_ints, default=[1, 2], metavar="LIST",
                        help="BLAS thread counts (default: 1,2)")
    parser.add_argument("--timeouts", type=_ints, default=[4], metavar="LIST",
                        help="OPENBLAS_THREAD_TIMEOUT values tried with each count above 1 (default: 4; '' for none)")
    parser.add_argument("--loads", type=_ints, default=[0, 1], metavar="LIST",
                        help="numbers of competing busy processes (default: 0,1)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds over all settings (default: 2)")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per measurement, at most (default: 200)")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="time per measurement, at most (default: 2; at least one step is timed)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first, at most 1 s of them (default: 10)")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 1 round, 20 steps, 0.5 s each")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"--models: expected names from {','.join(MODELS)}, got {','.join(unknown)}")
    if not args.threads or not args.loads:
        parser.error("--threads and --loads need at least one value each (--loads may hold 0)")
    try:
        check_int("--rounds", args.rounds)
        check_int("--steps", args.steps)
        for n in args.threads:
            check_int("--threads", n)
    except ValueError as exc:
        parser.error(str(exc))
    if args.quick:
        args.rounds, args.steps, args.seconds, args.warmup = 1, 20, 0.5, 3
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
