"""The checks behind ``minilottery doctor``: does this install work, on this machine, on this device?

Each check is a small function that returns ``Check`` results (a status, what was checked, what was found and,
for a problem, the fix), so that a test can look at them and the command only prints them. In order:

1. ``version_checks``: Python and every dependency against the minimum the installed package declares (its
   metadata, i.e. ``pyproject.toml``), and minilottery itself; ``blas_check``: the BLAS library and its threads;
   ``compiled_check`` and ``winograd_check``: the compiled loops against their NumPy twins.
2. ``data_checks``: the data root and, per data set, whether its files are there and verify (the loaders'
   checksum verification; a missing data set is a note, a corrupt one a problem).
3. ``device_checks``: on the GPU, CuPy and CUDA's versions, the device, and the three CUDA libraries CuPy needs:
   NVRTC (it compiles every elementwise kernel), cuBLAS (matrix products) and cuRAND (random numbers).
4. ``gradient_checks``: the finite-difference check of every layer type, the loss and a small masked network, in
   float64 on the device (``minilottery.gradcheck``).
5. ``training_step_checks``: one training step of LeNet-300-100 and Conv-2 on the device against the same step on
   the CPU: loss, gradients and parameters within float32 tolerance.

``run_checks`` runs them all. The device may also be a test device registered with ``minilottery.backend`` (the
strict backend of ``minilottery.testing``): then the gradient checks and training steps run through arrays that
refuse implicit NumPy conversion, and the CUDA-only lines say that they do not apply.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import minilottery
from minilottery import backend, compiled
from minilottery.data import DATASETS, FILES_OF, FOLDER_OF, DataError
from minilottery.data import download as data_download
from minilottery.data.checksums import download_command
from minilottery.data.layout import locate
from minilottery.data.paths import ENV_VAR, data_dir, source_data_dir
from minilottery.lab import threads

OK, NOTE, PROBLEM = "ok", "note", "problem"

# A correct backward agrees with central differences to about 1e-9 (gradcheck.py; tests/test_gradcheck.py measured
# at most 1.3e-9); a wrong one (a missing transpose, a dropped term) is off by order 1. 1e-7 leaves room for
# another machine's BLAS and still catches a gradient 1% off (error 5e-3).
GRADIENT_TOLERANCE = 1e-7

# Device against CPU, float32: the tolerances of tests/test_training.py's device comparisons. A gradient entry near
# 0 keeps only the precision of the largest entry, hence the absolute part scaled by it.
LOSS_RTOL = 1e-5
GRAD_RTOL, GRAD_ATOL_OF_MAX = 1e-4, 1e-5
PARAM_RTOL, PARAM_ATOL = 1e-5, 1e-6

INSTALL_HINT = 'pip install -e .'  # from the checkout, as every install hint here

@dataclass(frozen=True)
class Check:
    """One line of the doctor's report.

    Attributes:
        status: ``OK``, ``NOTE`` (nothing is wrong, but something is worth knowing) or ``PROBLEM``.
        name: what was checked, e.g. ``"numpy"``, ``"data mnist"``, ``"gradient Conv2d"``.
        detail: what was found (for a note, also what to do about it).
        fix: what to do about a problem (None when ``detail`` already says it, as the data errors do).
    """

    status: str
    name: str
    detail: str
    fix: str | None = None

    def line(self) -> str:
        """``"ok      numpy: 2.4.6"``, or ``"problem data mnist: ...; fix: ..."``: one line, whatever the texts."""
        fix = f"; fix: {self.fix}" if self.fix else ""
        text = " ".join(f"{self.name}: {self.detail}{fix}".split())  # a message's own line breaks become spaces
        return f"{self.status:<8}{text}"


def _failed(name: str, exc: BaseException, fix: str) -> Check:
    """A check that raised: a problem naming the exception (its message on one line) and the fix."""
    message = " ".join(str(exc).split()) or "no message"
    return Check(PROBLEM, name, f"{type(exc).__name__}: {message}", fix)


# -- 1. versions and BLAS ---------------------------------------------------------------------------------------------


def _version_tuple(text: str) -> tuple[int, ...]:
    """``"2.4.6"`` -> (2, 4, 6); ``"1.10.0rc1"`` -> (1, 10, 0): the leading numbers, for comparing minimums."""
    return tuple(int(re.match(r"\d*", part).group() or 0) for part in text.split("."))


def _requirements() -> list[tuple[str, str]]:
    """``[(name, minimum), ...]``: the installed package's dependencies (no extras) that say ``name>=minimum``."""
    found = []
    for requirement in importlib.metadata.requires("minilottery") or []:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*>=\s*([0-9.]+)", requirement.strip())
        if match:  # "pytest>=7.4; extra == 'dev'" does not match: extras are not the base install
            found.append((match[1], match[2]))
    return found


def version_checks() -> list[Check]:
    """Python, minilottery and each dependency: installed, importable, and at least the declared minimum."""
    checks = []
    try:
        metadata = importlib.metadata.metadata("minilottery")
    except importlib.metadata.PackageNotFoundError:
        metadata = None
    python = ".".join(map(str, sys.version_info[:3]))
    minimum = (metadata.get("Requires-Python") or "").removeprefix(">=") if metadata else ""
    if minimum and _version_tuple(python) < _version_tuple(minimum):
        checks.append(Check(PROBLEM, "python", f"{python} ({sys.executable}), minilottery needs >= {minimum}",
                            f"make a virtual environment with Python >= {minimum}, then {INSTALL_HINT}"))
    else:
        checks.append(Check(OK, "python", f"{python} ({sys.executable})"))
    where = Path(minilottery.__file__).resolve().parent
    if metadata is None:
        checks.append(Check(PROBLEM, "minilottery", f"{minilottery.__version__} imported from {where} but not "
                                                    f"installed", f"{INSTALL_HINT} in the checkout"))
        return checks
    if metadata["Version"] != minilottery.__version__:
        checks.append(Check(PROBLEM, "minilottery", f"{minilottery.__version__} imported from {where}, but the "
                                                    f"installed metadata says {metadata['Version']}",
                            f"{INSTALL_HINT} in the checkout again"))
    else:
        checks.append(Check(OK, "minilottery", f"{minilottery.__version__} ({where})"))
    for name, minimum in _requirements():
        try:
            module = importlib.import_module(name)  # every dependency's module has its distribution's name
            version = getattr(module, "__version__", None) or importlib.metadata.version(name)
        except Exception as exc:  # not installed, or broken (a missing shared library)
            checks.append(_failed(name, exc, INSTALL_HINT))
            continue
        if _version_tuple(version) < _version_tuple(minimum):
            checks.append(Check(PROBLEM, name, f"{version}, minilottery needs >= {minimum}", INSTALL_HINT))
        else:
            checks.append(Check(OK, name, version))
    return checks


def blas_check() -> Check:
    """The BLAS library NumPy uses (``threads.describe``), its own thread count and the count commands use."""
    info = threads.describe()
    if info["threads"] is None:
        return Check(NOTE, "blas", "threadpoolctl finds no BLAS library under NumPy: --threads will have no effect")
    try:
        used = f"commands use {threads.resolve()} (--threads N, else ${threads.ENV}, else {threads.DEFAULT})"
    except ValueError as exc:  # $MINILOTTERY_THREADS is not a count; the message says how to fix it
        return Check(PROBLEM, "blas", str(exc))
    architecture = f", {info['architecture']}" if info["architecture"] else ""
    return Check(OK, "blas", f"{info['blas']}{architecture}; {info['threads']} thread(s) by default, {used}")


def compiled_check() -> Check:
    """Whether the compiled loops run (``minilottery.compiled``), proven by one Adam update on 7 weights against
    the same update written in NumPy, and by the check for a mask of ones on three masks. A note, not a problem,
    without Numba: the NumPy passes give the same numbers.
    """
    if not compiled.enabled():
        return Check(NOTE, "compiled loops", compiled.describe() + "; training runs the NumPy passes, slower")
    try:
        rng = np.random.default_rng(0)
        param, grad, m, v = (rng.standard_normal(7).astype(np.float32) for _ in range(4))
        v = v * v  # a second moment is not negative
        grad[3], m[3] = 0.0, np.float32(3 * 2.0**-149)  # a moment stuck at a subnormal value: the loop's float64 path
        grad[5], v[5] = np.float32(1e-20), np.float32(1.0)  # a gradient whose square the loop leaves out of v
        mask = np.array([1, 0, 1, 1, 0, 1, 1], np.float32)
        want_m = m * 0.9 + (grad * mask) * (1.0 - 0.9)
        want_v = v * 0.999 + ((grad * mask) * (grad * mask)) * (1.0 - 0.999)
        want = (param - want_m / (np.sqrt(want_v) + 1e-8) * 1e-3) * mask
        for count in (None, 0):  # the loop's two compilations: with the stuck-moment path, and without it
            got = [a.copy() for a in (param, m, v)]
            compiled.adam_update(got[0], grad, mask, got[1], got[2], weight_decay=0.0, beta1=0.9, beta2=0.999,
                                 eps_hat=1e-8, step_size=1e-3, subnormal_moments=count)
            if not all(np.array_equal(a, b) for a, b in zip(got, (want, want_m, want_v))):
                return Check(PROBLEM, "compiled loops", "Adam's compiled update differs from its NumPy passes",
                             f"set {compiled.ENV_SWITCH}=0 and report the Numba version")
        # a mask of ones (skipped by Layer.masked_param) and masks with one 0 in a whole block or in the tail
        masks = [np.ones(compiled.MASK_BLOCK + 3, np.float32) for _ in range(3)]
        masks[1][7] = masks[2][-1] = 0.0
        if [compiled.mask_is_ones(mask) for mask in masks] != [True, False, False]:
            return Check(PROBLEM, "compiled loops", "the check for a mask of ones answers wrongly",
                         f"set {compiled.ENV_SWITCH}=0 and report the Numba version")
    except Exception as exc:  # Numba fails to compile on this platform
        return _failed("compiled loops", exc, f"set {compiled.ENV_SWITCH}=0, or reinstall Numba")
    return Check(OK, "compiled loops", compiled.describe() + "; Adam's update equals its NumPy passes, and the "
                                                             "check for a mask of ones answers as NumPy")


def winograd_check() -> Check:
    """Whether ``Conv2d``'s Winograd path works here: one forward and backward of a layer that takes it, against
    ``ReferenceConv2d`` (im2col) within float32 rounding. A note where it does not run (no compiled loops)."""
    from minilottery.layers import Conv2d, ReferenceConv2d

    rng = np.random.default_rng(0)
    # 30 images of 16 channels, 16x16: 480 tiles of 4x4 pixels, enough for the path (WINOGRAD_MIN_TILES)
    pair = [cls(16, 4, 3, padding=1, rng=np.random.default_rng(1)) for cls in (ReferenceConv2d, Conv2d)]
    x = rng.standard_normal((30, 16, 16, 16)).astype(np.float32)
    if not pair[1].uses_winograd(x):
        return Check(NOTE, "Winograd convolution", "not used (it needs the compiled loops); 3x3 convolutions run "
                                                   "im2col, slower")
    try:
        d_out = rng.standard_normal((30, 4, 16, 16)).astype(np.float32)
        mask = rng.random((4, 16, 3, 3)) > 0.5
        results = []
        for layer in pair:
            layer.set_mask("W", mask)
            y = layer.forward(x)
            results.append((y, layer.backward(d_out), layer.grads["W"]))
        # within 1e-5 of the largest entry, as tests/test_winograd.py asks
        worst = max(_excess(got, expected, 1e-5, 1e-5 * float(np.abs(expected).max()))
                    for got, expected in zip(results[1], results[0]))
    except Exception as exc:  # Numba fails to compile on this platform
        return _failed("Winograd convolution", exc, f"set {compiled.ENV_SWITCH}=0, or reinstall Numba")
    if worst > 1:
        return Check(PROBLEM, "Winograd convolution", "Conv2d's Winograd path differs from im2col's convolution",
                     f"set {compiled.ENV_SWITCH}=0 and report the Numba version")
    return Check(OK, "Winograd convolution", "a 3x3 layer's output and gradients equal im2col's within float32 "
                                             "rounding")


# -- 2. data ----------------------------------------------------------------------------------------------------------


def data_root_check(data_dir_option: str | None = None) -> Check:
    """Where the data sets are looked for, and which rule chose the folder (see ``minilottery.data.paths``)."""
    root = data_dir(data_dir_option)
    if data_dir_option:
        source = "--data-dir"
    elif os.environ.get(ENV_VAR):
        source = f"${ENV_VAR}"
    elif source_data_dir() == root:
        source = "the checkout's data/"
    else:
        source = "the user cache"
    if not root.is_dir():
        return Check(NOTE, "data root", f"{root} (from {source}) does not exist yet; `minilottery data download` "
                                        f"creates it")
    return Check(OK, "data root", f"{root} (from {source})")


def dataset_check(name: str, data_dir_option: str | None = None) -> Check:
    """Whether the files of data set ``name`` are there and pass the checksum verification the loaders use.

    None of them there is a note (an install without data is fine); a corrupt, unreadable or partial copy is a
    problem, named by the ``DataError`` of ``minilottery.data``, which says how to fix it. A file verified before
    and unchanged since is not hashed again (the verification record); ``minilottery data check`` re-hashes.
    """
    folder = FOLDER_OF[name](data_dir_option)
    files = FILES_OF[name]()
    label = f"data {name}"
    if not any(locate(f.name, folder, f.accepts_uncompressed) for f in files):
        return Check(NOTE, label, f"not in {folder}; `{download_command(files[0].fix)}` fetches it")
    try:
        data_download.load_files(files, folder, download=False)
    except DataError as exc:
        return Check(PROBLEM, label, str(exc))
    return Check(OK, label, f"{len(files)} file(s) in {folder}, checksums verified")


def data_checks(data_dir_option: str | None = None) -> list[Check]:
    """``data_root_check`` and ``dataset_check`` for each of ``minilottery.data.DATASETS``."""
    return [data_root_check(data_dir_option), *(dataset_check(name, data_dir_option) for name in DATASETS)]


# -- 3. the device ----------------------------------------------------------------------------------------------------

CUDA_LIBRARIES = ("nvrtc", "cublas", "curand")
REINSTALL_GPU = (f"{backend.GPU_INSTALL_HINT} (CuPy's [ctk] extra brings CUDA's libraries; the NVIDIA driver is "
                 f"all the machine needs besides)")


def _cuda_version(number: int) -> str:
    """CUDA's integer version -> text: 12080 -> "12.8"."""
    return f"{number // 1000}.{number % 1000 // 10}"


def device_checks(device: str) -> list[Check]:
    """The device's own lines: on "gpu", CuPy, CUDA's versions, the device, NVRTC, cuBLAS and cuRAND.

    On "cpu" one note; on a test device (the strict backend) a note per line, saying it does not apply. When
    CuPy or the device is missing, one problem line with the install hint (``backend.DeviceError``'s message),
    and no more: every other line would fail for the same reason.
    """
    if device == "cpu":
        return [Check(NOTE, "gpu", "not checked; `minilottery doctor --device gpu` checks CuPy, CUDA and the GPU")]
    if device != "gpu":
        return [Check(NOTE, name, f"not applicable on the {device} test device (no CUDA: it checks the device code "
                                  f"path on the CPU)") for name in ("cupy", "cuda device", *CUDA_LIBRARIES)]
    try:
        gpu = backend.get_backend("gpu")
    except backend.DeviceError as exc:
        return [Check(PROBLEM, "cupy", str(exc))]
    cupy = gpu.xp
    runtime = cupy.cuda.runtime
    checks = []
    try:
        versions = (f"CUDA runtime {_cuda_version(runtime.runtimeGetVersion())}, "
                    f"driver {_cuda_version(runtime.driverGetVersion())}")
        checks.append(Check(OK, "cupy", f"{cupy.__version__}, {versions}"))
        index = cupy.cuda.Device().id
        props = runtime.getDeviceProperties(index)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        checks.append(Check(OK, "cuda device", f"{runtime.getDeviceCount()} device(s); using {index}: {name}, "
                                               f"{props['totalGlobalMem'] / 2**30:.0f} GiB, compute capability "
                                               f"{props['major']}.{props['minor']}"))
    except Exception as exc:
        return [*checks, _failed("cuda device", exc, "check the NVIDIA driver (`nvidia-smi`) and CUDA_VISIBLE_DEVICES")]
    for library, check in zip(CUDA_LIBRARIES, (_nvrtc, _cublas, _curand)):
        try:
            checks.append(check(gpu))
        except Exception as exc:  # CuPy raises its own CUDA, compile and library errors
            checks.append(_failed(library, exc, f"{REINSTALL_GPU}; a driver older than the CUDA runtime above "
                                                f"also fails here: update the NVIDIA driver"))
    return checks


def _nvrtc(gpu: backend.Backend) -> Check:
    """CuPy compiles its elementwise kernels at run time with NVRTC: compile one, run it, check its numbers."""
    cupy = gpu.xp
    kernel = cupy.ElementwiseKernel("float32 x", "float32 y", "y = 2 * x + 1", "minilottery_doctor_affine")
    x = np.arange(1024, dtype=np.float32)
    got = gpu.to_numpy(kernel(gpu.from_numpy(x)))
    if not np.array_equal(got, 2 * x + 1):
        return Check(PROBLEM, "nvrtc", "a compiled kernel computed wrong numbers", REINSTALL_GPU)
    return Check(OK, "nvrtc", "compiled and ran an elementwise kernel")


def _cublas(gpu: backend.Backend) -> Check:
    """A float32 matrix product on cuBLAS against the float64 product on the host."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((128, 64), dtype=np.float32), rng.standard_normal((64, 32), dtype=np.float32)
    got = gpu.to_numpy(gpu.from_numpy(a) @ gpu.from_numpy(b))
    expected = a.astype(np.float64) @ b.astype(np.float64)
    error = float(np.abs(got - expected).max() / np.abs(expected).max())
    if not error < 1e-5:  # float32 sums of 64 products: about 1e-7
        return Check(PROBLEM, "cublas", f"a float32 matmul is off by {error:.1e} (relative)", REINSTALL_GPU)
    return Check(OK, "cublas", f"float32 matmul (128x64 @ 64x32) matches the host's to {error:.1e}")


def _curand(gpu: backend.Backend) -> Check:
    """100,000 uniform numbers from cuRAND (CuPy's ``RandomState`` is its host API): in [0, 1), mean near 1/2."""
    u = gpu.to_numpy(gpu.xp.random.RandomState(0).random_sample(100_000, dtype=np.float32))
    mean = float(u.mean())
    if not (u.min() >= 0 and u.max() < 1 and abs(mean - 0.5) < 0.01):  # the mean's std. dev. is 0.0009
        return Check(PROBLEM, "curand", f"uniform numbers out of [0, 1) or with mean {mean:.3f}", REINSTALL_GPU)
    return Check(OK, "curand", f"100,000 uniform numbers in [0, 1), mean {mean:.3f}")


# -- 4. gradient checks -----------------------------------------------------------------------------------------------


class _SameDraws:
    """Stands in for a ``numpy.random.Generator`` in ``Dropout``: the same draws every call, so that the finite
    differences all see one dropout mask."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def random(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.random.default_rng(self.seed).random(shape)


def _small_masked_network(rng: np.random.Generator) -> Any:
    """Conv, ReLU, pool, strided conv, ReLU, flatten, dense, ReLU, dense, with pruning masks and nonzero biases
    (which keep units whose every input is pruned away from ReLU's kink)."""
    from minilottery.layers import Conv2d, Dense, Flatten, MaxPool2d, ReLU, Sequential

    model = Sequential(Conv2d(1, 3, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),
                       Conv2d(3, 2, 3, stride=2, padding=1, rng=rng), ReLU(), Flatten(),
                       Dense(2 * 2 * 2, 6, rng=rng), ReLU(), Dense(6, 3, rng=rng))
    model.set_masks({"0.W": rng.random((3, 1, 3, 3)) > 0.3, "3.W": rng.random((2, 3, 3, 3)) > 0.3,
                     "6.W": rng.random((6, 8)) > 0.5, "8.W": rng.random((3, 6)) > 0.5})
    for name, value in model.parameters().items():
        if name.endswith(".b"):
            model.set_parameter(name, rng.uniform(0.1, 0.5, value.shape) * rng.choice([-1, 1], value.shape))
    return model


def _gradient_cases() -> list[tuple[str, Callable[[str], dict[str, float]]]]:
    """(name, check): each check takes a device and returns ``{array: relative error}`` (``gradcheck``'s)."""
    from minilottery.gradcheck import away_from_zero, check_layer, check_loss, check_model
    from minilottery.layers import Conv2d, Dense, Dropout, Flatten, MaxPool2d, ReferenceConv2d, ReLU

    def layer(make: Callable[[np.random.Generator], Any], shape: tuple[int, ...], seed: int,
              inputs: Callable[[np.ndarray], np.ndarray] = lambda x: x) -> Callable[[str], dict[str, float]]:
        def check(device: str) -> dict[str, float]:
            rng = np.random.default_rng(seed)
            built = make(rng).to(device)
            return check_layer(built, backend.to_device(inputs(rng.standard_normal(shape)), device), seed=seed)
        return check

    def loss(device: str) -> dict[str, float]:
        rng = np.random.default_rng(7)
        logits, labels = rng.standard_normal((5, 4)) * 3, np.array([0, 3, 1, 1, 2])
        return {"logits": check_loss(backend.to_device(logits, device), backend.to_device(labels, device))}

    def network(device: str) -> dict[str, float]:
        rng = np.random.default_rng(8)
        model = _small_masked_network(rng).to(device)
        x = backend.to_device(rng.standard_normal((3, 1, 7, 7)), device)
        # h = 1e-5: the loss is a scalar near 1, whose rounding error (1e-16 / h) h = 1e-6 makes too large here
        return check_model(model, x, backend.to_device(np.array([0, 2, 1]), device), h=1e-5)

    return [
        ("Dense", layer(lambda rng: Dense(7, 5, rng=rng), (4, 7), 0)),
        ("Conv2d stride 1", layer(lambda rng: Conv2d(3, 4, 3, padding=1, rng=rng), (2, 3, 6, 5), 1)),
        ("Conv2d stride 2", layer(lambda rng: Conv2d(3, 4, 3, stride=2, padding=1, rng=rng), (2, 3, 7, 5), 2)),
        ("ReferenceConv2d", layer(lambda rng: ReferenceConv2d(3, 4, 3, padding=1, rng=rng), (2, 3, 6, 5), 3)),
        ("MaxPool2d", layer(lambda rng: MaxPool2d(2), (2, 3, 6, 4), 4)),  # Gaussian inputs: no ties in a window
        ("ReLU", layer(lambda rng: ReLU(), (3, 4, 5), 5, away_from_zero)),
        ("Flatten", layer(lambda rng: Flatten(), (2, 3, 4, 5), 6)),
        ("Dropout", layer(lambda rng: Dropout(0.4, rng=_SameDraws(0)), (4, 6), 7)),
        ("softmax cross-entropy", loss),
        ("masked network", network),
    ]


def _report_fix(test_file: str, device: str) -> str:
    """The fix for a wrong number: the test that finds it on this device, and on the GPU the usual culprits."""
    require = "MINILOTTERY_REQUIRE_GPU=1 " if device == "gpu" else ""
    driver = f"; update the NVIDIA driver and {backend.GPU_INSTALL_HINT}" if device == "gpu" else ""
    return f"run `{require}python -m pytest {test_file} -k {device}` in the checkout and report its failure{driver}"


def gradient_checks(device: str) -> list[Check]:
    """Every layer type's backward, the loss's and a small masked network's against central differences, in
    float64 on ``device`` (``minilottery.gradcheck``); each error below ``GRADIENT_TOLERANCE``."""
    checks = []
    for name, check in _gradient_cases():
        label = f"gradient {name}"
        try:
            errors = check(device)
        except Exception as exc:
            checks.append(_failed(label, exc, _report_fix("tests/test_gradcheck.py", device)))
            continue
        worst = max(errors, key=errors.get)
        if not errors[worst] < GRADIENT_TOLERANCE:  # also a NaN
            checks.append(Check(PROBLEM, label, f"the gradient of {worst} is off by {errors[worst]:.1e} (relative; "
                                                f"a correct backward: below {GRADIENT_TOLERANCE:.0e}) on {device}",
                                _report_fix("tests/test_gradcheck.py", device)))
        else:
            checks.append(Check(OK, label, f"{', '.join(errors)} within {errors[worst]:.1e} of central differences "
                                           f"(float64, {device})"))
    return checks


# -- 5. one training step, device against CPU -------------------------------------------------------------------------

# model -> (input shape, batch): LeNet-300-100 on MNIST's images, Conv-2 on CIFAR-10's (Figure 2's networks)
STEP_MODELS = {"lenet_300_100": ((1, 28, 28), 60), "conv2": ((3, 32, 32), 4)}


def _excess(got: np.ndarray, expected: np.ndarray, rtol: float, atol: float) -> float:
    """How far ``got`` is from ``expected`` in units of the tolerance ``atol + rtol * |expected|`` (<= 1 passes,
    as in ``np.testing.assert_allclose``)."""
    return float((np.abs(got.astype(np.float64) - expected) / (atol + rtol * np.abs(expected))).max())


def _one_step(model: Any, x: np.ndarray, y: np.ndarray, device: str) -> tuple[float, dict, dict]:
    """One SGD-with-momentum step of ``model`` on ``device``: (loss, host gradients, host parameters after)."""
    from minilottery.optim import make_optimizer
    from minilottery.training import train_step

    # SGD: its update is linear in the gradient. Adam's first step is about lr * sign(g), which float32 rounding
    # can flip for a gradient near 0, so that two correct devices would disagree.
    optimizer = make_optimizer("sgd", model, 0.1, momentum=0.9)
    loss = float(train_step(model, optimizer, backend.to_device(x, device), backend.to_device(y, device)))
    grads = {name: backend.to_numpy(grad) for name, grad in model.gradients().items()}
    return loss, grads, model.state_dict()


def training_step_check(model_name: str, device: str) -> Check:
    """One training step of ``model_name`` on ``device`` against the same step on the CPU (same θ0, batch and
    pruning mask on the first layer): loss, every gradient and every parameter within float32 tolerance."""
    from minilottery.models import build_model, weight_names

    label = f"train step {model_name}"
    input_shape, batch = STEP_MODELS[model_name]
    rng = np.random.default_rng(0)
    x = rng.random((batch, *input_shape), dtype=np.float32)  # (N, C, H, W)
    y = rng.integers(0, 10, batch).astype(np.int64)
    cpu_model = build_model(model_name, input_shape, seed=0)
    first = weight_names(cpu_model)[0]
    cpu_model.set_masks({first: rng.random(cpu_model.parameters()[first].shape) > 0.2})  # the masked code paths
    device_model = copy.deepcopy(cpu_model)
    fix = _report_fix("tests/test_training.py", device)
    try:
        cpu_loss, cpu_grads, cpu_params = _one_step(cpu_model, x, y, "cpu")
        if device == "cpu":
            if not np.isfinite(cpu_loss):
                return Check(PROBLEM, label, f"the loss is {cpu_loss} on the CPU", fix)
            return Check(OK, label, f"loss {cpu_loss:.4f} on cpu (the reference that --device gpu compares with)")
        loss, grads, params = _one_step(device_model.to(device), x, y, device)
    except Exception as exc:
        return _failed(label, exc, fix)
    excess = {"loss": abs(loss - cpu_loss) / (LOSS_RTOL * abs(cpu_loss))}
    for name, grad in cpu_grads.items():
        atol = max(GRAD_ATOL_OF_MAX * float(np.abs(grad).max()), 1e-30)  # > 0: an all-zero gradient divides by it
        excess[f"gradient {name}"] = _excess(grads[name], grad, GRAD_RTOL, atol)
    for name, param in cpu_params.items():
        excess[f"parameter {name}"] = _excess(params[name], param, PARAM_RTOL, PARAM_ATOL)
    worst = max(excess, key=excess.get)
    if not excess[worst] <= 1:  # also a NaN
        return Check(PROBLEM, label, f"{device} and cpu differ in the {worst} by {excess[worst]:.1f} times the "
                                     f"float32 tolerance", fix)
    return Check(OK, label, f"loss {loss:.4f} on {device}; loss, {len(cpu_grads)} gradients and {len(cpu_params)} "
                            f"parameters match the CPU's (worst: {excess[worst]:.2f} of the float32 tolerance)")


def training_step_checks(device: str) -> list[Check]:
    """``training_step_check`` for LeNet-300-100 and Conv-2."""
    return [training_step_check(name, device) for name in STEP_MODELS]


# -- all of them ------------------------------------------------------------------------------------------------------


def run_checks(device: str = "cpu", data_dir_option: str | None = None) -> Iterator[Check]:
    """Every check in order, each as soon as it is done. When the device itself fails (no CuPy, no GPU, a CUDA
    library that does not work), the gradient checks and training steps are not run: one note says so."""
    yield from version_checks()
    yield blas_check()
    yield compiled_check()
    yield winograd_check()
    yield from data_checks(data_dir_option)
    device_lines = device_checks(device)
    yield from device_lines
    if any(check.status == PROBLEM for check in device_lines):
        yield Check(NOTE, "device checks", f"gradient checks and training steps not run on {device}: fix the "
                                           f"problem above first")
        return
    with threads.limit(threads.DEFAULT):  # tiny products: one thread, whatever $MINILOTTERY_THREADS says
        yield from gradient_checks(device)
        yield from training_step_checks(device)


def summary(checks: list[Check], device: str, seconds: float) -> str:
    """The last line: how many checks of each status, on which device, in how long."""
    counts = {status: sum(check.status == status for check in checks) for status in (PROBLEM, NOTE, OK)}
    verdict = "no problems" if not counts[PROBLEM] else f"{counts[PROBLEM]} problem(s)"
    return f"doctor: {verdict}, {counts[NOTE]} note(s), {counts[OK]} ok on {device} in {seconds:.1f} s"


__all__ = ["NOTE", "OK", "PROBLEM", "Check", "blas_check", "data_checks", "dataset_check", "device_checks",
           "gradient_checks", "run_checks", "summary", "training_step_check", "training_step_checks",
           "version_checks"]
