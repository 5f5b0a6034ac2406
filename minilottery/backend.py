"""The array backend: NumPy on the CPU, CuPy on the GPU, one code path for both.

This is the only module that may import CuPy, and it does so lazily, inside a guard, the first time the GPU
is asked for: ``import minilottery`` never imports CuPy.

Every numerical function in minilottery starts with ``xp = get_array_module(x)`` and then calls ``xp.*``
instead of ``np.*``, so the same lines run on host (NumPy) and device (CuPy) arrays (the pattern of DeZero's
``cuda.py`` and Chainer). Data crosses between host and device only at the edges, through ``to_device`` and
``to_numpy``: CuPy arrays refuse implicit conversion to NumPy, so a stray ``np.*`` call on a device array
fails loudly instead of silently copying.

The default device is chosen, in order, by ``use("cpu"|"gpu")``, by the environment variable
``MINILOTTERY_DEVICE=cpu|gpu``, and otherwise is ``"cpu"``. The command-line tools' ``--device`` calls ``use``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

GPU_INSTALL_HINT = 'pip install -e ".[gpu]"'


class DeviceError(RuntimeError):
    """A device was asked for that this machine cannot provide (the message says how to fix it)."""


@dataclass(frozen=True)
class Backend:
    """One device: its array namespace and how arrays get on and off it.

    Attributes:
        name: the device's name ("cpu", "gpu", or a test backend's name).
        xp: the array namespace (``numpy``, ``cupy``, or a module-like object with the same calls).
        array_type: the type of this device's arrays (``get_array_module`` dispatches on it).
        from_numpy: host ``np.ndarray`` -> array on this device.
        to_numpy: array on this device -> host ``np.ndarray``.
        synchronize: waits until queued device work has finished (a no-op on the CPU); call it before
            reading a clock.
        scatter_add: ``scatter_add(a, indices, values)`` adds ``values`` into ``a[indices]`` in place,
            accumulating repeated indices (``np.add.at`` / ``cupyx.scatter_add``).
    """

    name: str
    xp: Any
    array_type: type
    from_numpy: Callable[[np.ndarray], Any]
    to_numpy: Callable[[Any], np.ndarray]
    synchronize: Callable[[], None]
    scatter_add: Callable[[Any, Any, Any], None]


def _numpy_backend() -> Backend:
    return Backend(
        name="cpu",
        xp=np,
        array_type=np.ndarray,
        from_numpy=lambda a: a,
        to_numpy=lambda a: a,
        synchronize=lambda: None,
        scatter_add=np.add.at,
    )


def _cupy_backend() -> Backend:
    """Imports CuPy (only here) and checks that a CUDA device is usable; one clear line if not."""
    try:
        import cupy
        import cupyx
    except ImportError as exc:
        raise DeviceError(
            f"the GPU was requested but CuPy is not installed ({exc}); fix: {GPU_INSTALL_HINT}, "
            "or use --device cpu"
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CuPy raises CUDARuntimeError or a driver error here
        raise DeviceError(
            f"the GPU was requested but no CUDA device is usable ({type(exc).__name__}: {exc}); "
            f"check the NVIDIA driver (nvidia-smi) and that CuPy came from {GPU_INSTALL_HINT}, or use --device cpu"
        ) from None
    if count < 1:
        raise DeviceError("the GPU was requested but CUDA reports no device; use --device cpu")
    return Backend(
        name="gpu",
        xp=cupy,
        array_type=cupy.ndarray,
        from_numpy=cupy.asarray,
        to_numpy=cupy.asnumpy,
        synchronize=lambda: cupy.cuda.Device().synchronize(),
        scatter_add=cupyx.scatter_add,
    )


# Backends by name; "gpu" is created on first use so that importing minilottery never imports CuPy.
_backends: dict[str, Backend] = {"cpu": _numpy_backend()}
_factories: dict[str, Callable[[], Backend]] = {"gpu": _cupy_backend}
_default: str | None = None  # set by use(); None means "read MINILOTTERY_DEVICE, else cpu"


def register_backend(backend: Backend) -> None:
    """Adds (or replaces) a backend under ``backend.name``; tests use it for a CuPy-like strict backend."""
    _backends[backend.name] = backend


def unregister_backend(name: str) -> None:
    """Removes a backend added by ``register_backend`` (the CPU backend cannot be removed)."""
    if name == "cpu":
        raise ValueError("the cpu backend cannot be unregistered")
    _backends.pop(name, None)
    global _default
    if _default == name:
        _default = None


def available_devices() -> list[str]:
    """Names that ``use`` and ``get_backend`` accept (the GPU is listed even when it would fail)."""
    return sorted(set(_backends) | set(_factories))


def get_backend(device: str | None = None) -> Backend:
    """The backend for ``device`` (default: the current default device); creates the GPU backend lazily.

    Raises:
        ValueError: an unknown device name.
        DeviceError: the GPU was asked for and CuPy or CUDA is missing.
    """
    name = default_device() if device is None else device
    if name not in _backends:
        if name not in _factories:
            raise ValueError(f"unknown device {name!r}: expected one of {', '.join(available_devices())}")
        _backends[name] = _factories[name]()
    return _backends[name]


def default_device() -> str:
    """The device used when none is named: ``use(...)``, else ``$MINILOTTERY_DEVICE``, else ``"cpu"``."""
    if _default is not None:
        return _default
    env = os.environ.get("MINILOTTERY_DEVICE", "").strip().lower()
    if env and env not in set(_backends) | set(_factories):
        raise ValueError(f"MINILOTTERY_DEVICE={env!r} is not a device: "
                         f"expected one of {', '.join(available_devices())}")
    return env or "cpu"


def use(device: str) -> Backend:
    """Makes ``device`` ("cpu" or "gpu") the default and returns its backend (fails early, clearly)."""
    global _default
    backend = get_backend(device)
    _default = backend.name
    return backend


def _backend_of(array: Any) -> Backend | None:
    for backend in _backends.values():
        if backend.name != "cpu" and isinstance(array, backend.array_type):
            return backend
    if "cupy" in sys.modules and type(array).__module__.startswith("cupy"):
        return get_backend("gpu")
    return None


def get_array_module(*arrays: Any) -> Any:
    """The array namespace (``numpy`` or ``cupy``) that owns ``arrays``; NumPy for host arrays and scalars."""
    for array in arrays:
        backend = _backend_of(array)
        if backend is not None:
            return backend.xp
    return np


def device_of(array: Any) -> str:
    """The name of the device that holds ``array`` ("cpu" for NumPy arrays and Python scalars)."""
    backend = _backend_of(array)
    return "cpu" if backend is None else backend.name


def to_device(array: Any, device: str | None = None) -> Any:
    """Moves ``array`` to ``device`` (default: the current default device); no copy if it is already there."""
    target = get_backend(device)
    if device_of(array) == target.name:
        return array
    return target.from_numpy(to_numpy(array))


def to_numpy(array: Any) -> np.ndarray:
    """Copies ``array`` to the host as a NumPy array (no copy if it already is one)."""
    backend = _backend_of(array)
    if backend is None:
        return np.asarray(array)
    return backend.to_numpy(array)


def synchronize(device: str | None = None) -> None:
    """Blocks until the device's queued work is done; time GPU code only after calling it."""
    get_backend(device).synchronize()


def scatter_add(a: Any, indices: Any, values: Any) -> None:
    """``a[indices] += values`` with repeated indices accumulated, in place, on ``a``'s device."""
    backend = _backend_of(a) or _backends["cpu"]
    backend.scatter_add(a, indices, values)
