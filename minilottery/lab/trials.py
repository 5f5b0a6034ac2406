"""Independent IMP trials, run in parallel, summarised as mean, minimum and maximum per round and arm.

Frankle & Carbin (2019) average five trials for every point they plot and draw the minimum and maximum as
error bars (Section 2, Figures 3 and 4): one seed can mislead, the dense network's early-stop iteration
especially. ``run_trials`` runs K independent IMP experiments with seeds s, s+1, ..., s+K-1 (each seed sets
θ0, the controls' draws and the data order) and aggregates them.

Where the trials run. Any ``concurrent.futures.Executor`` will do; we do not write a scheduler:

* ``workers=1`` (no executor): one after another in this process, with a progress bar per training below
  the bar of the whole run;
* ``workers=W``: a ``ProcessPoolExecutor`` of W processes;
* ``executor=client.get_executor()`` of a Dask ``distributed.Client`` (``minilottery trials --scheduler
  HOST:PORT``, extra: ``pip install -e ".[dask]"``): an existing cluster. The workers read the data and write the
  trial folders themselves, so the data folder and OUT must be paths every worker can reach (the same machine,
  or a shared file system).

Wherever it runs, every trial limits its BLAS to ``threads`` threads (``minilottery.lab.threads``; default
``$MINILOTTERY_THREADS``, else 1). The thread count changes the order in which products add up, so a trial
gives bit-identical results to ``run_imp_in_folder`` (``minilottery imp``) at the same thread count, and to itself run
with any number of workers.

Layout of OUT::

    OUT/trials.json        the base config (its seed is the first trial's) and the seeds
    OUT/seed_<s>/          one complete IMP run directory per trial (see ``runs.py``), resumable on its own
    OUT/summary.json       the aggregate: per round, each arm's mean in "arms" and its min/max in "spread",
    OUT/summary.csv        so that ``minilottery report OUT`` and ``minilottery plot OUT`` read it like one run
    OUT/figures/           the figures with min/max error bars

Running the same command again skips finished trials and continues interrupted ones after their last
completed round; with a larger ``rounds`` (or a lower ``target_percent``) it extends every trial
(``run_folder.extends``). A trial is never run twice at the same time (a lock file per trial,
``OUT/.seed_<s>.lock``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import multiprocessing.connection
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from minilottery.backend import get_backend
from minilottery.checks import check_int
from minilottery.imp import ARM_METRICS, IMPConfig, stop_reason
from minilottery.lab import runs, tables
from minilottery.lab import threads as blas_threads
from minilottery.lab.progress import RunBar, planned_percents, trainings
from minilottery.lab.run_folder import rounds_on_disk, run_imp_in_folder
from minilottery.lab.runs import TRIALS_FILE

POLL_SECONDS = 1.0  # how often the progress bar counts the trials' completed rounds


def trial_seeds(first: int, count: int) -> list[int]:
    """The seeds of ``count`` trials starting at ``first``: s, s+1, ..., s+count-1."""
    return list(range(first, first + count))


def trial_dir(out_dir: str | os.PathLike[str], seed: int) -> Path:
    """``OUT/seed_<seed>``: the run directory of one trial."""
    return Path(out_dir) / f"seed_{seed}"


def trial_config(config: IMPConfig, seed: int) -> IMPConfig:
    """``config`` for the trial with this seed: the seed of θ0 and of the data order both change."""
    return dataclasses.replace(config, seed=seed, train=dataclasses.replace(config.train, seed=seed))


def is_trials_dir(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` holds a trials run (``OUT/trials.json``)."""
    return (Path(path) / TRIALS_FILE).is_file()


# -- one trial, in whichever process runs it --------------------------------------------------------


@dataclass(frozen=True)
class TrialTask:
    """Everything a worker process needs to run one trial (picklable, so it can travel to another process).

    Attributes:
        config: ``IMPConfig.to_dict()`` of the trial (its own seed).
        out_dir: the trial's run directory.
        loader: a picklable callable returning the ``Dataset`` (e.g. ``functools.partial(load_mnist, DIR)``);
            called in the worker, so the data is read where it is used rather than sent over a pipe.
        device: "cpu" or "gpu".
        threads: BLAS threads for this trial (``minilottery.lab.threads``; None: ``threads.resolve()`` in the worker).
        overwrite: replace a run of another config in ``out_dir``.
        progress: progress bars (only sensible when the trial runs in this process).
        on_round: called with each round the trial trains (not with those read back); only when the trial runs
            in this process, since a callable seldom travels to another one.
    """

    config: dict[str, Any]
    out_dir: str
    loader: Callable[[], Any]
    device: str = "cpu"
    threads: int | None = None
    overwrite: bool = False
    progress: bool = False
    on_round: Callable[[Any], None] | None = None


def run_trial(task: TrialTask) -> dict[str, Any]:
    """Runs (or continues) one trial; returns its summary (``IMPResult.summary()``)."""
    from minilottery.lab.cli import warn_in_one_line

    out = Path(task.out_dir)
    with _trial_lock(out.parent / f".{out.name}.lock"), blas_threads.limit(task.threads), warnings.catch_warnings():
        warnings.showwarning = warn_in_one_line(f"trials ({out.name})")  # a worker's warnings read as the CLI's
        config = IMPConfig.from_dict(task.config)
        result = run_imp_in_folder(config, task.loader(), out, overwrite=task.overwrite, device=task.device,
                                   progress=task.progress, on_round=task.on_round, on_read_back=_ignore)
        return result.summary()


def _ignore(rnd: Any) -> None:
    """``on_read_back`` of a trial: rounds already on disk are not progress."""


@contextlib.contextmanager
def _trial_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``path`` (waiting for it): one trial folder, one writer at a time.

    A trial left running by a killed parent (a Dask task, say) would otherwise race the resumed one. The lock
    is advisory (``fcntl.flock``) and is released by the kernel when its holder dies; where ``fcntl`` does
    not exist (Windows), trials are not locked.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _exit_with_parent(lifeline: multiprocessing.connection.Connection) -> None:
    """Process-pool initializer: ends this worker when the process that started it dies (even by kill -9),
    so that a resumed run never races a trial left running by the killed one.

    ``lifeline`` is the read end of a pipe whose write end only the parent holds and never writes to. When the
    parent dies, the kernel closes that end, and the read here ends at once (EOFError): no polling, no delay.
    """
    def watch() -> None:
        try:
            lifeline.recv()  # blocks for the parent's lifetime: nothing is ever sent
        except EOFError:
            pass
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """A pool of ``workers`` fresh processes ("spawn": nothing inherited from this one but its arguments), each
    of which ends when this process dies (``_exit_with_parent``); the pool shuts down on exit.

    An interrupt (Ctrl-C, or SIGTERM, which ``minilottery`` turns into one) ends the workers at once instead of
    waiting for their trials: a kill reaches only this process, and the trial folders keep every completed round.
    """
    context = multiprocessing.get_context("spawn")
    lifeline, held_by_parent = context.Pipe(duplex=False)  # (read end, write end)
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                                  initializer=_exit_with_parent, initargs=(lifeline,))
    wait = True  # for the running trials to finish
    try:
        yield pool
    except KeyboardInterrupt:
        wait = False
        held_by_parent.close()  # ends every worker now (their watchers see the pipe close)
        raise
    finally:
        pool.shutdown(wait=wait, cancel_futures=not wait)
        held_by_parent.close()  # only after the shutdown has joined the workers: closing it ends them
        lifeline.close()


# -- many trials ------------------------------------------------------------------------------------


@dataclass
class TrialsResult:
    """The trials of one run: ``summaries[seed]`` is that trial's summary; ``summary`` the aggregate."""

    config: IMPConfig
    seeds: list[int]
    summaries: dict[int, dict[str, Any]]
    summary: dict[str, Any]
    out_dir: Path


def run_trials(
    config: IMPConfig,
    trials: int,
    out_dir: str | os.PathLike[str],
    loader: Callable[[], Any],
    *,
    workers: int = 1,
    executor: concurrent.futures.Executor | None = None,
    device: str | None = None,
    threads: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> TrialsResult:
    """Runs ``trials`` IMP experiments with seeds ``config.seed``, +1, ... and aggregates them (see module doc).

    Args:
        config: the experiment; ``config.seed`` is the first trial's seed.
        trials: K >= 1.
        out_dir: OUT; created if new, continued if it holds these trials.
        loader: picklable callable returning the data set (called here once, to fail early, and in each worker).
        workers: processes of the local pool (1: run in this process). Ignored when ``executor`` is given.
        executor: run the trials there instead (e.g. a Dask client's ``get_executor()``).
        device: "cpu" or "gpu" for every trial.
        threads: BLAS threads per trial, wherever it runs (default: ``minilottery.lab.threads.resolve()``,
            i.e. $MINILOTTERY_THREADS, else 1). Each trial equals ``run_imp_in_folder`` under
            ``threads.limit(threads)``.
        overwrite: replace trial folders holding a run of another config.
        progress: progress bars: one over every training left (``progress.RunBar``), and in this process one
            per training.
        log: where one line per finished trial goes (None: nowhere).

    Raises:
        ValueError: bad arguments, or a trial folder holding a run of another config (before anything runs).
    """
    config = config.validate()
    check_int("--trials", trials, low=1)
    check_int("--workers", workers, low=1)
    threads_per_trial = blas_threads.resolve(threads)  # resolved here, so every worker uses the same count
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder (new or holding these trials)")
    if (out / "config.json").exists() and not is_trials_dir(out):
        raise ValueError(f"--out {out} holds a `minilottery imp` run; give `trials` another --out")
    device = get_backend(device).name
    seeds = trial_seeds(config.seed, trials)
    data = loader()  # missing data fails here, once, rather than in every worker
    done = {seed: rounds_on_disk(trial_dir(out, seed), trial_config(config, seed), data, overwrite) for seed in seeds}
    per_trial = trainings(config, len(planned_percents(config, tuple(data.x_train.shape[1:]))))
    del data
    runs.atomic_write_json(out / TRIALS_FILE, {"config": config.to_dict(), "seeds": seeds})
    complete = [seed for seed in seeds if stop_reason(config, done[seed]) is not None]
    summaries = {seed: runs.load_summary(trial_dir(out, seed)) for seed in complete}
    if log and summaries:
        log(f"{len(summaries)} of {trials} trials already complete (seeds {_seed_list(summaries)}): skipped")

    def finished(seed: int, summary: dict[str, Any]) -> None:
        summaries[seed] = summary
        if log:
            last = summary["rounds"][-1]
            bar.write(f"trial seed {seed} done: {len(summary['rounds'])} rounds, down to "
                      f"{last['percent_remaining']:.1f}% of the weights", log)

    def trained_so_far() -> int:
        """Trainings of this run so far, counted from the rounds the trials' folders hold."""
        return sum(trainings(config, len(runs.completed_rounds(trial_dir(out, seed)))) for seed in seeds) - before

    before = sum(trainings(config, len(done[seed])) for seed in seeds)
    in_process = executor is None and workers == 1
    with RunBar(per_trial * len(seeds) - before, progress, desc=f"{len(seeds)} trials") as bar:
        tasks = {seed: TrialTask(trial_config(config, seed).to_dict(), str(trial_dir(out, seed)), loader, device,
                                 threads_per_trial, overwrite, progress and in_process,
                                 bar.round_done if in_process else None)
                 for seed in seeds if seed not in complete}
        if in_process:
            for seed, task in tasks.items():
                finished(seed, run_trial(task))
        elif tasks:
            with contextlib.ExitStack() as stack:
                pool = executor if executor is not None else stack.enter_context(process_pool(workers))
                _run_on(pool, tasks, finished, lambda: bar.count(trained_so_far()))
    summary = aggregate([summaries[seed] for seed in seeds])
    runs.atomic_write_json(out / "summary.json", summary)
    runs.atomic_write_text(out / "summary.csv", tables.trials_csv(summary))
    return TrialsResult(config, seeds, {seed: summaries[seed] for seed in seeds}, summary, out)


def _run_on(pool: concurrent.futures.Executor, tasks: dict[int, TrialTask], finished: Callable[[int, dict], None],
            count: Callable[[], None]) -> None:
    """Submits every task to ``pool`` and waits, calling ``count`` every ``POLL_SECONDS`` (the progress bar
    counts the trainings in the trials' completed rounds)."""
    futures = {pool.submit(run_trial, task): seed for seed, task in tasks.items()}
    pending = set(futures)
    try:
        while pending:
            done, pending = concurrent.futures.wait(pending, timeout=POLL_SECONDS,
                                                    return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                seed = futures[future]
                try:
                    summary = future.result()
                except Exception as exc:
                    raise RuntimeError(f"trial seed {seed} failed: {type(exc).__name__}: {exc}") from exc
                finished(seed, summary)
            count()
    finally:
        for future in pending:  # on an error or Ctrl-C: do not start the trials still waiting
            future.cancel()


def _seed_list(summaries: dict[int, Any]) -> str:
    return ", ".join(str(s) for s in sorted(summaries))


# -- aggregation ------------------------------------------------------------------------------------


def aggregate(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, minimum and maximum over trials, per round and arm (the paper's points and error bars).

    Args:
        summaries: the trials' summaries (``{"config": ..., "rounds": [round.json, ...]}``), in seed order.

    Returns:
        A summary of the same shape, readable by ``report`` and ``plots``: ``config`` is the first trial's
        with ``seed`` set to the first seed; each round has ``arms[arm][metric]`` = the mean over the trials
        that completed that round, and ``spread[arm][metric]`` = {"min", "max"} and ``spread[arm]["n"]`` =
        how many trials contributed. Rounds and their percent remaining come from the first trial (pruning
        keeps exact per-layer counts, so every seed prunes to the same percents); ``trials`` lists the seeds.
    """
    if not summaries:
        raise ValueError("aggregate needs at least one trial's summary")
    seeds = [s["config"]["seed"] for s in summaries]
    rounds = []
    for index, first in enumerate(summaries[0]["rounds"]):
        present = [s["rounds"][index] for s in summaries if len(s["rounds"]) > index]
        arms, spread = {}, {}
        for arm in first["arms"]:
            entries = [r["arms"][arm] for r in present if arm in r["arms"]]
            arms[arm], spread[arm] = {}, {"n": len(entries)}
            for key in ARM_METRICS:
                values = [float(e[key]) for e in entries if e.get(key) is not None]
                arms[arm][key] = float(np.mean(values)) if values else None
                spread[arm][key] = {"min": min(values), "max": max(values)} if values else None
        rounds.append({**{k: first[k] for k in ("round", "percent_remaining", "remaining", "total", "layers")
                          if k in first},
                       "arms": arms, "spread": spread})
    return {"config": summaries[0]["config"], "trials": seeds, "rounds": rounds}


def trial_dirs(out_dir: str | os.PathLike[str]) -> dict[int, Path]:
    """seed -> run directory of each trial listed in OUT/trials.json whose folder exists."""
    seeds = runs.read_json(Path(out_dir) / TRIALS_FILE)["seeds"]
    return {seed: trial_dir(out_dir, seed) for seed in seeds if trial_dir(out_dir, seed).is_dir()}


def load_trial_summaries(out_dir: str | os.PathLike[str]) -> dict[int, dict[str, Any]]:
    """seed -> summary of each trial listed in OUT/trials.json that has at least one completed round."""
    return {seed: runs.load_summary(path) for seed, path in trial_dirs(out_dir).items()
            if runs.completed_rounds(path)}


def finished_trials_summary(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The aggregate (``aggregate``) of a trials folder's finished trials, so that ``report`` and ``plot`` can
    read a folder whose other trials are still running; "trials" lists the finished trials' seeds.

    Raises:
        ValueError: no trial has finished yet, or a trial's files are damaged (the message names the file).
    """
    out = Path(out_dir)
    record = runs.read_json(out / TRIALS_FILE, dict)
    if not isinstance(record.get("config"), dict) or not isinstance(record.get("seeds"), list):
        raise runs.RunFileError(f"{out / TRIALS_FILE} is not a trials record (needs 'config' and 'seeds'); "
                                f"{runs.DAMAGED_FIX}")
    config = IMPConfig.from_dict(record["config"])
    finished = [runs.load_summary(trial_dir(out, seed)) for seed in record["seeds"]
                if stop_reason(config, runs.completed_rounds(trial_dir(out, seed))) is not None]
    if not finished:
        raise ValueError(f"{out}: none of its {len(record['seeds'])} trials has finished yet; wait for one, or "
                         f"look at a trial in progress with `minilottery report {trial_dir(out, record['seeds'][0])}`")
    return aggregate(finished)


def trials_complete(out_dir: str | os.PathLike[str]) -> bool:
    """Whether every trial listed in OUT/trials.json has finished."""
    record = runs.read_json(Path(out_dir) / TRIALS_FILE)
    config = IMPConfig.from_dict(record["config"])
    return all(stop_reason(config, runs.completed_rounds(trial_dir(out_dir, seed))) is not None
               for seed in record["seeds"])


__all__ = ["TRIALS_FILE", "TrialTask", "TrialsResult", "aggregate", "finished_trials_summary", "is_trials_dir",
           "load_trial_summaries", "process_pool", "run_trial", "run_trials", "trial_config", "trial_dir", "trial_dirs",
           "trial_seeds", "trials_complete"]
