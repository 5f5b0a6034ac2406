"""A CuPy-like test device that runs on the CPU, so that NumPy leaking into the GPU path fails without a GPU.

CuPy arrays refuse to become NumPy arrays by accident: ``np.asarray(gpu_array)`` raises ``TypeError``, and so
does mixing a host ``np.ndarray`` with a device array in ``+`` or in a ``cupy.*`` call. Code that forgets
``xp = get_array_module(x)`` and calls ``np.*`` therefore works on the CPU and breaks on the GPU. This module
gives the CPU the same manners:

* ``StrictArray`` (in ``strict_array``) wraps a host ``np.ndarray`` and refuses every implicit conversion:
  ``np.asarray(a)``, ``np.exp(a)``, ``np_array + a`` and ``np.sum(a)`` all raise.
* ``strict_xp`` is a module-like namespace with NumPy's API whose functions take and return ``StrictArray``;
  handing one a raw ``np.ndarray`` raises ``TypeError`` like CuPy's "Unsupported type <class
  'numpy.ndarray'>". Only ``strict_xp.asarray`` / ``array`` / ``asanyarray`` accept host arrays, and they copy
  (as ``cupy.asarray`` copies host data to the device).
* ``make_strict_backend`` / ``strict_device`` plug it into ``minilottery.backend`` as a device.

Example::

    with strict_device() as device:
        x = to_device(np.ones((2, 3), np.float32), device)   # a StrictArray
        xp = get_array_module(x)                            # strict_xp
        y = xp.exp(x).sum(axis=1)                           # fine
        np.exp(x)                                           # TypeError, as on the GPU
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any

import numpy as np

from minilottery import backend as _backend
from minilottery.testing.strict_array import _HINT, StrictArray, _Call, _call, _wrap_function

__all__ = ["StrictArray", "make_strict_backend", "strict_device", "strict_xp"]

# The methods of a ufunc that compute on arrays, and so follow the strict rules like a call of the ufunc does.
_UFUNC_METHODS = frozenset({"at", "reduce", "accumulate", "reduceat", "outer"})


class _StrictUfunc:
    """A NumPy ufunc with the strict rules on ``__call__``, ``at``, ``reduce``, ``accumulate``, ``outer``."""

    def __init__(self, ufunc: np.ufunc, where: str) -> None:
        self._ufunc = ufunc
        self._where = where
        self.__name__ = ufunc.__name__
        self.__doc__ = ufunc.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _call(self._ufunc, self._where, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        value = getattr(self._ufunc, name)
        if name in _UFUNC_METHODS:
            return _wrap_function(value, f"{self._where}.{name}")
        return value  # nin, nout, identity, types, ...

    def __repr__(self) -> str:
        return f"<strict ufunc {self.__name__!r}>"


# Host data may enter the device only through these (CuPy's asarray/array copy host arrays to the device).
_HOST_ENTRY_POINTS = frozenset({"asarray", "array", "asanyarray"})


class _StrictNamespace(types.ModuleType):
    """NumPy's API (or a NumPy submodule's) with the strict rules; attributes are wrapped on first use.

    Types and constants pass through (``float32``, ``newaxis``, ``pi``, ``errstate``), except that ``ndarray``
    is ``StrictArray``; submodules (``random``, ``linalg``, ``lib.stride_tricks``, ...) are wrapped too.
    """

    def __init__(self, name: str, numpy_module: types.ModuleType, top_level: bool = False) -> None:
        super().__init__(name, f"NumPy's {numpy_module.__name__} namespace for StrictArray (see strict_backend)")
        self._numpy_module = numpy_module
        self._top_level = top_level

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            value = getattr(self._numpy_module, name)
        except AttributeError:
            raise AttributeError(f"{self.__name__} has no attribute {name!r} "
                                 f"({self._numpy_module.__name__} has none either)") from None
        wrapped = self._wrap_attribute(name, value)
        setattr(self, name, wrapped)  # cached: the next lookup does not reach __getattr__
        return wrapped

    def _wrap_attribute(self, name: str, value: Any) -> Any:
        where = f"{self.__name__}.{name}"
        if value is np.ndarray:
            return StrictArray
        if isinstance(value, types.ModuleType):
            if value.__name__.startswith("numpy"):
                return _StrictNamespace(where, value)
            return value
        if isinstance(value, np.ufunc):
            return _StrictUfunc(value, where)
        if isinstance(value, type) or not callable(value):
            return value  # dtypes, constants, classes such as errstate and finfo
        return _wrap_function(value, where, allow_host=self._top_level and name in _HOST_ENTRY_POINTS)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(dir(self._numpy_module)))


strict_xp = _StrictNamespace("strict_xp", np, top_level=True)


def _from_numpy(a: Any) -> StrictArray:
    return StrictArray(np.array(a, copy=True))  # a copy: "device" memory never aliases the host's


def _to_numpy(a: StrictArray) -> np.ndarray:
    return a.get()


def _scatter_add(a: StrictArray, indices: Any, values: Any) -> None:
    if not isinstance(a, StrictArray):
        raise TypeError(f"scatter_add on the strict device expects a StrictArray, got {type(a)!r}; {_HINT}")
    call = _Call("scatter_add")
    np.add.at(a._data, call.unwrap(indices), call.unwrap(values))


def make_strict_backend(name: str = "strict") -> _backend.Backend:
    """A ``minilottery.backend.Backend`` whose arrays are ``StrictArray`` and whose ``xp`` is ``strict_xp``."""
    return _backend.Backend(
        name=name,
        xp=strict_xp,
        array_type=StrictArray,
        from_numpy=_from_numpy,
        to_numpy=_to_numpy,
        synchronize=lambda: None,
        scatter_add=_scatter_add,
    )


@contextlib.contextmanager
def strict_device(name: str = "strict") -> Iterator[str]:
    """Registers the strict backend as device ``name`` for the ``with`` block and yields the name."""
    if name == "cpu":
        raise ValueError("the strict device cannot be named 'cpu'; use another name, e.g. 'strict'")
    _backend.register_backend(make_strict_backend(name))
    try:
        yield name
    finally:
        _backend.unregister_backend(name)
