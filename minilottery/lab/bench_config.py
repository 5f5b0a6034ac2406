"""The options of ``minilottery bench`` (``BenchConfig``; ``TorchScriptConfig`` for ``--vs-torch-script``) and their
sane bounds.

Kept apart from ``bench.py`` so that the measurements (``bench_steps``, ``bench_sparse``, ``bench_torch``) and the
run that calls them (``bench.py``) all read the options from here, and none imports the other back.
"""

from __future__ import annotations

from dataclasses import dataclass

from minilottery.checks import check_int, check_real
from minilottery.data.dataset import VALIDATION_SIZE
from minilottery.lab import threads
from minilottery.lab.presets import DEMO_PRESET, PRESETS  # --vs-torch-script trains one of the demo's networks
from minilottery.models import MODELS
from minilottery.training import TrainConfig

MNIST_TRAIN_EXAMPLES = 60_000 - VALIDATION_SIZE  # MNIST's training images less the validation split: 55,000
MNIST_TEST_EXAMPLES = 10_000
# Sane upper bounds of the options (the memory they need is checked against the machine's by check_memory).
MAX_REPEATS = 10_000
MAX_PEAK_SIZE = 16_384  # three 16384^2 float32 matrices: 3 GiB, 8.8 TFLOP per product
MAX_SPARSE_IMAGES = 100_000
MAX_RUNS = 1000  # whole processes per side of --vs-torch-script
SPARSE_FRACTIONS = (1.0, 0.1, 0.036, 0.01)


@dataclass
class BenchConfig:
    """Settings of one benchmark run (the CLI's options).

    Attributes:
        models: names from ``minilottery.models.MODELS``.
        device: "cpu" or "gpu".
        repeats: timed repeats per measurement (the median is reported).
        warmup: untimed steps before timing.
        batch_size: training batch (the paper's 60).
        eval_batch_size: evaluation batch (100, the one runs used before 0.3; training now takes it from a memory
            budget, ``minilottery.training.evaluation_batch``).
        eval_repeats: timed evaluation batches.
        peak_size: side of the square product for ``peak_gflops`` (None: ``default_peak_size``).
        peak_repeats: timed square products (the best is reported).
        memory: measure ``peak_memory_mb``.
        sparse: run the sparse-inference section.
        sparse_fractions: fractions of the hidden layers' weights kept.
        sparse_images: images per sparse/dense inference pass (the MNIST test set has 10,000).
        sparse_repeats: timed passes per configuration.
        compare_torch: also time the step in PyTorch, when installed.
        seed: seed of the weights and the synthetic data.
    """

    models: tuple[str, ...] = ("lenet_300_100", "conv2")
    device: str = "cpu"
    repeats: int = 20
    warmup: int = 5
    batch_size: int = TrainConfig.batch_size
    eval_batch_size: int = 100
    eval_repeats: int = 3
    peak_size: int | None = None
    peak_repeats: int = 5
    memory: bool = True
    sparse: bool = True
    sparse_fractions: tuple[float, ...] = SPARSE_FRACTIONS
    sparse_images: int = 10_000
    sparse_repeats: int = 5
    compare_torch: bool = False
    seed: int = 0

    def validate(self) -> BenchConfig:
        """Raises ValueError naming the command-line option of the first bad value. Returns self."""
        unknown = [m for m in self.models if m not in MODELS]
        if not self.models or unknown:
            raise ValueError(f"--models must be a comma-separated list of {', '.join(MODELS)}, "
                             f"got {','.join(self.models)!r}")
        bounded = [
            ("--repeats", self.repeats, 1, MAX_REPEATS), ("--warmup", self.warmup, 0, MAX_REPEATS),
            ("--batch-size", self.batch_size, 1, MNIST_TRAIN_EXAMPLES),  # a batch beyond the training set
            ("--eval-batch-size", self.eval_batch_size, 1, MNIST_TEST_EXAMPLES),  # ... beyond the test set
            ("--eval-repeats", self.eval_repeats, 1, MAX_REPEATS),
            ("--peak-repeats", self.peak_repeats, 1, MAX_REPEATS),
            ("--sparse-images", self.sparse_images, 1, MAX_SPARSE_IMAGES),
            ("--sparse-repeats", self.sparse_repeats, 1, MAX_REPEATS),
        ]
        if self.peak_size is not None:  # None: the device's default size
            bounded.append(("--peak-size", self.peak_size, 16, MAX_PEAK_SIZE))
        for option, value, low, high in bounded:
            check_int(option, value, low=low, high=high)
        for fraction in self.sparse_fractions:
            check_real("--sparse-fractions", fraction, low=0.0, low_open=True, high=1.0, high_open=False,
                       hint="e.g. 1,0.1,0.036,0.01")
        return self


@dataclass
class TorchScriptConfig:
    """Settings of ``minilottery bench --vs-torch-script``: one network of the demo, trained by minilottery and by
    the PyTorch script ``benchmarks/torch_peer.py`` in whole processes, alternately.

    Attributes:
        runs: processes per side (A B A B ...: ``runs`` of each).
        iterations: training steps per process (the demo's 5,000).
        eval_every: evaluate the whole validation and test sets every this many iterations.
        density: fraction of the hidden layers' weights the mask keeps (the output layer is pruned at half the
            rate); 1 keeps every weight, still masked, as round 0 of the demo.
        seed: seed of the weights and the batch order (each side draws its own numbers from it).
        threads: BLAS threads of minilottery's side and ``torch.set_num_threads`` of PyTorch's.
        torch_python: the interpreter that runs the PyTorch script (None: this one).
        data_dir: the data root or MNIST's own folder (None: minilottery's default, ``data.paths``).
    """

    runs: int = 5
    iterations: int = PRESETS[DEMO_PRESET]["iterations"]  # 5,000
    eval_every: int = TrainConfig.eval_every
    density: float = 1.0
    seed: int = 0
    threads: int = threads.DEFAULT
    torch_python: str | None = None
    data_dir: str | None = None

    def validate(self) -> TorchScriptConfig:
        """Raises ValueError naming the command-line option of the first bad value. Returns self."""
        check_int("--runs", self.runs, high=MAX_RUNS)
        check_int("--iterations", self.iterations)
        check_int("--eval-every", self.eval_every)
        check_real("--density", self.density, low=0.0, low_open=True, high=1.0, high_open=False,
                   hint="e.g. 0.2 for a network pruned to 20%")
        check_int("--seed", self.seed, low=0)
        threads.check(self.threads)
        return self
