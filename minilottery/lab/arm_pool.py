"""The arms of an IMP round trained at the same time, in worker processes: ``imp --workers N``.

A round of ``run_imp`` trains its ticket and, from round 1 on, each control (``reinit``, ``random_prune``).
The arms of one round are independent of each other: each starts from its own weights and masks and sees the
same data in the same order. So they can train at the same time, one per core: with the paper's trial (the
ticket and the reinit control) on two cores, a round takes as long as its slower arm instead of both.

``ArmPool`` is ``run_imp``'s ``train_arms`` hook. Its workers are fresh processes (``trials.process_pool``:
spawned, ended with this process); each loads the data once with the ``loader`` it is given (reading the
files where they are used rather than sending 200 MB over a pipe) and trains every arm sent to it with
``minilottery.imp.train_arm``, at ``threads`` BLAS threads. An arm trained in a worker is the arm trained here,
bit for bit: the same code, the same thread count (``tests/test_arm_pool.py``). Progress bars stay off in the
workers (several bars writing at once garble each other); the command's run bar counts the rounds.
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Callable
from typing import Any

from minilottery.imp import ArmJob, ArmResult, IMPConfig, train_arm
from minilottery.lab import threads as blas_threads
from minilottery.lab.trials import process_pool


class ArmPool(contextlib.AbstractContextManager):
    """``with ArmPool(workers, loader) as pool: run_imp(..., train_arms=pool)``: each round's arms in parallel.

    Args:
        workers: processes (at most one arm each at a time; more than a round's arms are never busy).
        loader: a picklable callable returning the data set, called once in each worker (e.g.
            ``functools.partial(load_data, "mnist", None)``).
        threads: BLAS threads in each worker (None: ``threads.resolve()`` there).
    """

    def __init__(self, workers: int, loader: Callable[[], Any], threads: int | None = None) -> None:
        self.workers, self.loader, self.threads = workers, loader, threads
        self._stack = contextlib.ExitStack()
        self._pool: Any = None

    def __enter__(self) -> ArmPool:
        self._pool = self._stack.enter_context(process_pool(self.workers))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.__exit__(*exc)
        self._pool = None

    def __call__(self, config: IMPConfig, data: Any, jobs: dict[str, ArmJob], device: str, progress: bool,
                 kernels: Callable[[Any], Any] | None = None) -> dict[str, tuple[ArmResult, dict[int, Any]]]:
        """``train_arms_in_turn``'s result, with the arms trained at the same time in the workers (``data`` is
        not sent: each worker has its own from ``loader``; ``progress`` is off there)."""
        if self._pool is None:
            raise RuntimeError("ArmPool: use it inside `with ArmPool(...) as pool:`")
        futures = {name: self._pool.submit(train_arm_in_worker, self.loader, self.threads, config, job, device,
                                           kernels)
                   for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}  # the first failure is raised here


_worker_data: dict[bytes, Any] = {}  # in a worker: pickled loader -> its data set, loaded on the first arm


def train_arm_in_worker(loader: Callable[[], Any], threads: int | None, config: IMPConfig, job: ArmJob, device: str,
                        kernels: Callable[[Any], Any] | None) -> tuple[ArmResult, dict[int, Any]]:
    """In a worker: ``train_arm`` for one job, on the data ``loader`` gives (loaded once per worker)."""
    key = pickle.dumps(loader)
    if key not in _worker_data:
        _worker_data.clear()  # a worker serves one run: never two data sets at once
        _worker_data[key] = loader()
    with blas_threads.limit(threads):
        return train_arm(config, _worker_data[key], job.start, job.masks, device, False, job.desc, job.snapshot_at,
                         kernels)


__all__ = ["ArmPool", "train_arm_in_worker"]
