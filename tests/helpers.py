"""What several test modules share: devices, synthetic data, local servers, command-line runners, comparisons.

Test modules import from here, never from one another; fixtures that many modules use live in ``conftest.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import gzip
import hashlib
import http.server
import json
import os
import socket
import struct
import threading
from pathlib import Path

import numpy as np

from minilottery import backend, imp
from minilottery.data import Dataset
from minilottery.data.checksums import DataFile
from minilottery.imp import IMPConfig
from minilottery.lab import runs
from minilottery.lab.presets import config_from_options
from minilottery.training import train

REPO = Path(__file__).resolve().parent.parent  # the checkout: subprocesses import its package


def subprocess_env(**variables: str) -> dict[str, str]:
    """The environment of a child Python that imports this checkout's package (and ``tests``) on the CPU."""
    return {**os.environ, "PYTHONPATH": str(REPO), "MINILOTTERY_DEVICE": "cpu", **variables}


# -- devices and randomness -------------------------------------------------------------------------------------------


def on_device(obj, device):
    """A copy of a layer/model (or an array) on ``device``; the host original is left as it was."""
    if hasattr(obj, "to"):
        return copy.deepcopy(obj).to(device)
    return backend.to_device(obj, device)


# np.random's module-level functions draw from one hidden global generator: a result that depends on them
# depends on whatever ran before. Code under test takes explicit generators (np.random.default_rng).
LEGACY_RANDOM = sorted({"seed", *(name for name in dir(np.random) if not name.startswith("_")
                                  and getattr(getattr(np.random, name), "__self__", None) is np.random.mtrand._rand)})


class LegacyRandomUsed(AssertionError):
    """Raised by np.random's global functions during a test."""


def refuse_legacy(name: str):
    """A stand-in for ``np.random.<name>`` that raises LegacyRandomUsed."""
    def refused(*args, **kwargs):
        raise LegacyRandomUsed(f"np.random.{name} draws from the global generator; pass a numpy.random.Generator")
    return refused


# -- synthetic data and small runs ------------------------------------------------------------------------------------


def synthetic_data(seed: int = 0, n_train: int = 240, n_eval: int = 60) -> Dataset:
    """A small learnable MNIST-shaped set: each class lights up its own band of rows, plus noise."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = rng.integers(0, 10, n).astype(np.int64)
        x = 0.5 * rng.random((n, 1, 28, 28), dtype=np.float32)  # (n, 1, 28, 28)
        for i, label in enumerate(y):
            x[i, 0, 2 * label:2 * label + 4, :] += 0.5
        return x, y

    return Dataset(*split(n_train), *split(n_eval), *split(n_eval), name="synthetic")


def synthetic_loader(dataset: str = "mnist", data_dir: str | None = None) -> Dataset:
    """``synthetic_data()`` in place of a data set: stands in for ``commands.imp.load_data(dataset, data_dir)``
    and is the loader of trials (module level, so worker processes unpickle it by name)."""
    return synthetic_data()


# Runs the CLI in a fresh interpreter with the synthetic data in place of MNIST (no download, no files).
SYNTHETIC_CLI = (
    "import sys; import minilottery.lab.commands.imp as c; from tests.helpers import synthetic_loader; "
    "c.load_data = synthetic_loader; from minilottery.lab.cli import main; sys.exit(main(sys.argv[1:]))"
)


def small_config(**options) -> IMPConfig:
    """A two-round LeNet IMP config of 12 iterations (no controls), with ``options`` replaced."""
    base = dict(model="lenet_300_100", rounds=2, iterations=12, eval_every=4, controls=())
    base.update(options)
    cfg = config_from_options(**base)  # config_from_options skips None (an option not given) ...
    return dataclasses.replace(cfg, rounds=None) if options.get("rounds", 0) is None else cfg  # ... so set it here


def without_seconds(metrics):
    return {k: v for k, v in metrics.items() if k != "seconds"}  # wall-clock time differs between runs


def assert_same_results(a, b):
    """Two IMPResults hold bitwise the same masks, weights and metrics."""
    assert len(a.rounds) == len(b.rounds)
    for ra, rb in zip(a.rounds, b.rounds):
        assert ra.info == rb.info
        assert ra.masks.keys() == rb.masks.keys()
        assert all(np.array_equal(ra.masks[n], rb.masks[n]) for n in ra.masks)
        assert ra.arms.keys() == rb.arms.keys()
        for arm in ra.arms:
            x, y = ra.arms[arm], rb.arms[arm]
            for attr in ("masks", "init_weights", "final_weights"):
                dx, dy = getattr(x, attr), getattr(y, attr)
                assert dx.keys() == dy.keys()
                assert all(np.array_equal(dx[n], dy[n]) and dx[n].dtype == dy[n].dtype for n in dx), (ra.index, arm)
            assert without_seconds(x.metrics) == without_seconds(y.metrics)


def assert_same_dirs(a: Path, b: Path):
    """Same round files with the same contents (metrics.json up to its "seconds")."""
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and "figures" not in p.parts)
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and "figures" not in p.parts)
    for rel in files:
        if rel.suffix == ".npz":
            x, y = runs.load_npz(a / rel), runs.load_npz(b / rel)
            assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x), rel
        elif rel.name == "metrics.json":
            assert without_seconds(runs.read_json(a / rel)) == without_seconds(runs.read_json(b / rel)), rel
        else:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def counting_trainings(monkeypatch) -> list[str]:
    """Counts every network minilottery.imp trains from now on: one entry (its progress label) per call."""
    trained = []

    def counted(*args, **kwargs):
        trained.append(kwargs.get("desc", ""))
        return train(*args, **kwargs)

    monkeypatch.setattr(imp, "train", counted)
    return trained


# -- comparing runs ---------------------------------------------------------------------------------------------------


def assert_same_files(files_a: dict[str, object], files_b: dict[str, object]) -> None:
    """The same file keys, and under each a bit-identical array or an equal JSON value."""
    assert files_a.keys() == files_b.keys()
    for key in files_a:
        if isinstance(files_a[key], np.ndarray):
            np.testing.assert_array_equal(files_a[key], files_b[key], err_msg=key)
        else:
            assert files_a[key] == files_b[key], key


# -- data files and local servers -------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """uint8 array -> IDX file bytes (magic 0x0800 | ndim, then big-endian uint32 dimensions)."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_mnist(folder: Path, n_train: int = 60, n_test: int = 20, compress: bool = True) -> dict[str, str]:
    """Write four small MNIST-format files; returns the checksums load_mnist needs for them."""
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(n_train) % 10).astype(np.uint8),  # label = index % 10
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(n_test) % 10).astype(np.uint8),
    }
    # make each training image identify its index, so splits can be checked against the labels
    arrays["train-images-idx3-ubyte.gz"][:, 0, 0] = np.arange(n_train)
    checksums = {}
    for name, array in arrays.items():
        raw = idx_bytes(array)
        if compress:
            (folder / name).write_bytes(gzip.compress(raw))
        else:
            (folder / name.removesuffix(".gz")).write_bytes(raw)
        checksums[name] = hashlib.sha256(raw).hexdigest()
    return checksums


def assert_small_data_set(data, train_shape: tuple, val_shape: tuple, test_shape: tuple) -> None:
    """The splits have these shapes; images float32 in [0, 1], labels int64; train and validation partition
    the training examples (the first pixel of each says which it is), each keeping its own label (index % 10)."""
    assert (data.x_train.shape, data.x_val.shape, data.x_test.shape) == (train_shape, val_shape, test_shape)
    for x in (data.x_train, data.x_val, data.x_test):
        assert x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 1.0
    for y in (data.y_train, data.y_val, data.y_test):
        assert y.dtype == np.int64
    index = np.rint(np.concatenate([data.x_train, data.x_val])[:, 0, 0, 0] * 255).astype(int)
    assert sorted(index) == list(range(train_shape[0] + val_shape[0]))
    np.testing.assert_array_equal(np.concatenate([data.y_train, data.y_val]), index % 10)


def assert_split_is_seeded(load, other_seed: int) -> None:
    """``load(seed)`` gives the same split for the same seed, another one for ``other_seed``."""
    a, b, c = load(0), load(0), load(other_seed)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.x_val, c.x_val)


# A small gzip file to download: its name, uncompressed bytes and their checksum, right and wrong gzip bytes.
NAME = "sample-idx1-ubyte.gz"
CONTENT = bytes(range(256)) * 40  # the uncompressed file
SHA = hashlib.sha256(CONTENT).hexdigest()
GOOD = gzip.compress(CONTENT)
BAD = gzip.compress(CONTENT[::-1])
FILE = DataFile(NAME, sha256_uncompressed=SHA)


def served_by(*mirrors: str, **fields) -> DataFile:
    """``FILE`` as served by ``mirrors`` (and any other fields replaced, e.g. ``size=``)."""
    return dataclasses.replace(FILE, mirrors=mirrors, **fields)


@contextlib.contextmanager
def local_server(handler):
    """An HTTP server on 127.0.0.1, on a port the OS picks, one thread per request, shut down on exit.

    Yields the ``ThreadingHTTPServer``; its URL is ``url_of(server)``.
    """
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@contextlib.contextmanager
def serving_folder(folder: Path):
    """A local HTTP server (``local_server``) that serves the files in ``folder``; yields its base URL, ending
    in "/"."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # keep pytest's output clean
    with local_server(handler) as httpd:
        yield f"{url_of(httpd)}/"


def url_of(httpd: http.server.HTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


def refused_url() -> str:
    """A URL on a local port that nothing listens on: connection refused, as when offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


def run_data_command(argv: list[str]) -> int:
    """Runs ``minilottery data ...`` in this process; returns its exit code."""
    from minilottery.lab.commands import data as command

    parser = argparse.ArgumentParser(prog="minilottery")
    command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


# -- a fake run folder -------------------------------------------------------------------------------------------------


# LeNet-300-100 after Flatten: Dense layers at Sequential indices 1, 3, 5.
LENET_SHAPES = {"1.W": (300, 784), "3.W": (100, 300), "5.W": (10, 100)}
LENET_RATES = {"1.W": 0.2, "3.W": 0.2, "5.W": 0.1}  # the paper's per-round pruning rates (output layer at half)
FAKE_ROUNDS = 4


def _history(final_acc: float, iterations: int = 1000, every: int = 50) -> dict:
    it = list(range(0, iterations + 1, every))
    # Rises from chance (10%) towards final_acc; losses fall accordingly.
    acc = [0.1 + (final_acc - 0.1) * (1 - np.exp(-i / 60)) for i in it]
    loss = [float(2.3 * np.exp(-i / 200) + 0.05) for i in it]
    return {"iteration": it, "train_loss": loss, "val_loss": loss, "val_accuracy": acc, "test_loss": loss,
            "test_accuracy": acc}


def _arm(stop: int, acc: float, final: float) -> dict:
    return {"early_stop_iteration": stop, "test_accuracy_at_early_stop": acc, "final_test_accuracy": final}


def make_fake_run(run_dir: Path, rounds: int = FAKE_ROUNDS, missing_reinit_round: int = 2, random_prune=False) -> dict:
    """A run directory as `minilottery imp` writes it (ticket + reinit; reinit missing in one round)."""
    rng = np.random.default_rng(0)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"model": "lenet_300_100", "rounds": rounds, "arms": ["ticket", "reinit"]}
    (run_dir / "config.json").write_text(json.dumps(config))
    # Pixels near the centre are more likely to keep their connections, as in trained LeNets.
    yy, xx = np.mgrid[:28, :28]
    centre = np.exp(-((yy - 13.5) ** 2 + (xx - 13.5) ** 2) / 80.0).reshape(784)  # (28, 28) -> (784,)
    scores = {n: rng.random(s) for n, s in LENET_SHAPES.items()}
    scores["1.W"] = scores["1.W"] * (0.3 + centre)  # (300, 784) * (784,)
    done = []
    for r in range(rounds + 1):
        masks, layers = {}, {}
        for name, shape in LENET_SHAPES.items():
            keep = round(np.prod(shape) * (1 - LENET_RATES[name]) ** r)
            threshold = np.sort(scores[name].ravel())[::-1][keep - 1]
            masks[name] = scores[name] >= threshold
            layers[name] = {"remaining": int(masks[name].sum()), "total": int(np.prod(shape)),
                            "percent": 100.0 * masks[name].mean()}
        total = sum(v["total"] for v in layers.values())
        percent = 100.0 * sum(v["remaining"] for v in layers.values()) / total
        # The ticket learns faster and better down to ~20%, then degrades (the paper's Figure 4 shape).
        better, worse = min(r, 6), max(0, r - 12)
        arms = {"ticket": _arm(5000 - 500 * better + 600 * worse, 0.978 + 0.002 * better - 0.003 * worse,
                               0.979 + 0.001 * better - 0.003 * worse)}
        if r >= 1 and r != missing_reinit_round:
            arms["reinit"] = _arm(5000 + 800 * r, 0.975 - 0.004 * r, 0.976 - 0.004 * r)
        if r >= 1 and random_prune:
            arms["random_prune"] = _arm(5000 + 900 * r, 0.975 - 0.005 * r, 0.976 - 0.005 * r)
        round_json = {"round": r, "percent_remaining": percent, "layers": layers, "arms": arms}
        rdir = run_dir / f"round_{r:03d}"
        rdir.mkdir()
        np.savez(rdir / "masks.npz", **masks)
        for arm, result in arms.items():
            (rdir / arm).mkdir()
            metrics = dict(result, history=_history(result["final_test_accuracy"]))
            (rdir / arm / "metrics.json").write_text(json.dumps(metrics))
        (rdir / "round.json").write_text(json.dumps(round_json))
        done.append(round_json)
    summary = {"config": config, "rounds": done}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return summary


# -- pausing a child process at a known point, to kill it there -------------------------------------------------------

PAUSED = "minilottery tests: paused after round"  # the line pause_after_round prints


def pause_after_round(index: int) -> None:
    """In this process, from now on: once a run folder has saved round ``index``, print ``PAUSED <index>`` to
    stdout (flushed) and block for good, so that a test reading that line knows the round is on disk and the
    process is still running, and can kill -9 it there without watching the clock."""
    from minilottery.lab.run_folder import RunFolder

    save_round = RunFolder.save_round
    if getattr(save_round, "pauses_after", None) is not None:  # a trials worker calls its loader once per trial
        return

    def save_then_pause(self, rnd):
        save_round(self, rnd)
        if rnd.index == index:
            print(f"{PAUSED} {index}", flush=True)
            threading.Event().wait()  # until killed

    save_then_pause.pauses_after = index
    RunFolder.save_round = save_then_pause


def synthetic_loader_paused_after_round(index: int) -> Dataset:
    """``synthetic_loader`` that first makes this process pause after round ``index`` (``pause_after_round``):
    the loader of a trials run, as ``functools.partial(synthetic_loader_paused_after_round, index)``, so that
    every spawned worker process installs the pause itself."""
    pause_after_round(index)
    return synthetic_data()


def cli_paused_after_round(index: int, synthetic: bool = True) -> list[str]:
    """``[python, "-c", script]`` running the ``minilottery`` command (on ``synthetic_data`` unless ``synthetic``
    is False) that pauses for good once round ``index`` is saved; append the command's arguments."""
    import sys

    plain = "import sys; from minilottery.lab.cli import main; sys.exit(main(sys.argv[1:]))"
    cli = SYNTHETIC_CLI if synthetic else plain
    return [sys.executable, "-c", f"from tests.helpers import pause_after_round; pause_after_round({index}); {cli}"]


def read_until_paused(proc, stderr_path: Path, hang_guard_seconds: float = 600) -> None:
    """Reads the child ``proc``'s stdout (a text pipe) line by line until the line ``pause_after_round`` prints;
    the child then stays paused until it is killed. Fails with the child's stderr (sent to the file
    ``stderr_path``, so that no pipe fills up) if its stdout ends first.

    ``hang_guard_seconds`` only keeps a broken test from hanging the suite (the child is killed, its stdout
    ends, and the test fails); it is far above the few seconds a healthy child takes, and times nothing.
    """
    guard = threading.Timer(hang_guard_seconds, proc.kill)
    guard.start()
    try:
        for line in proc.stdout:
            if line.startswith(PAUSED):
                return
    finally:
        guard.cancel()
    proc.wait()
    raise AssertionError(f"the child ended (exit code {proc.returncode}) before pausing; its stderr: "
                         f"{stderr_path.read_text()}")


# -- a fake run folder with weights, as `minilottery export` reads it --------------------------------------------------


FAKE_DATA = {"name": "mnist", "train": 55000, "val": 5000, "test": 10000, "shape": [1, 28, 28]}  # config.json's "data"


def make_fake_weight_run(run_dir: Path, rounds: int = 3, random_prune: bool = True) -> dict:
    """``make_fake_run`` (round 2 without reinit) plus the files it leaves out that a ticket needs: a real
    config.json record, θ0 (with non-zero biases), and every arm's ``init.npz`` and ``final.npz`` (pruned entries 0),
    and random_prune's own ``masks.npz``. Returns the summary."""
    from minilottery import prune
    from minilottery.models import build_model

    summary = make_fake_run(run_dir, rounds=rounds, random_prune=random_prune)
    config = IMPConfig(rounds=rounds, controls=("reinit", "random_prune") if random_prune else ("reinit",))
    (run_dir / "config.json").write_text(json.dumps({**config.to_dict(), "data": FAKE_DATA}))
    rng = np.random.default_rng(5)

    def weights(seed: int) -> dict[str, np.ndarray]:
        state = build_model("lenet_300_100", seed=seed).state_dict()
        return {name: (0.1 * rng.standard_normal(v.shape)).astype(np.float32) if name.endswith(".b") else v
                for name, v in state.items()}

    theta0 = weights(0)
    np.savez(run_dir / "theta0.npz", **theta0)
    for info in summary["rounds"]:
        rdir = runs.round_dir(run_dir, info["round"])
        masks = runs.load_npz(rdir / "masks.npz")
        for arm in info["arms"]:
            arm_masks = prune.random_prune(masks, rng) if arm == "random_prune" else masks
            if arm == "random_prune":
                np.savez(rdir / arm / "masks.npz", **arm_masks)
            init = prune.masked_weights(weights(1000 + info["round"]) if arm == "reinit" else theta0, arm_masks)
            moved = {name: v + (0.05 * rng.standard_normal(v.shape)).astype(np.float32) for name, v in init.items()}
            np.savez(rdir / arm / "init.npz", **init)
            np.savez(rdir / arm / "final.npz", **prune.masked_weights(moved, arm_masks))
    return summary


def synthetic_load_data_paused_after_round(index: int, dataset: str = "mnist", data_dir: str | None = None) -> Dataset:
    """``commands.imp.load_data`` as ``functools.partial(synthetic_load_data_paused_after_round, index)``: the
    synthetic data, in a process that pauses after round ``index`` (``pause_after_round``). The ``trials``
    command hands it to its spawned workers, so each of them installs the pause itself."""
    pause_after_round(index)
    return synthetic_data()
