"""A CuPy-like test device that runs on the CPU, so that NumPy leaking into the GPU path fails without a GPU.

CuPy arrays refuse to become NumPy arrays by accident: ``np.asarray(gpu_array)`` raises ``TypeError``, and so
does mixing a host ``np.ndarray`` with a device array in ``+`` or in a ``cupy.*`` call. Code that forgets
``xp = get_array_module(x)`` and calls ``np.*`` therefore works on the CPU and breaks on the GPU. This module
gives the CPU the same manners:

* ``StrictArray`` (in ``strict_array``) wraps a host ``np.ndarray`` and refuses every implicit conversion:
  ``np.asarray(a)``, ``np.exp(a)``, ``np_array + a`` and ``np.sum(a)`` all raise.
* ``strict_xp`` is a module-like namespace with the part of NumPy's API that CuPy also has (``CUPY_NAMES``;
  any other name raises ``AttributeError``, as ``cupy.busday_count`` would). Its functions take and return
  ``StrictArray``; handing one a raw ``np.ndarray`` raises ``TypeError`` like CuPy's "Unsupported type <class
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


# The names strict_xp serves: NumPy's names that CuPy also provides (checked against cupy in
# tests/test_strict_backend.py where CuPy is installed), written as paths below the top-level namespace. Any other
# name raises AttributeError, so code that calls a NumPy-only function fails here as it would on the GPU. Add a
# name only after checking that CuPy has it (https://docs.cupy.dev/en/stable/reference/comparison.html).
CUPY_NAMES = frozenset({
    "abs", "absolute", "add", "all", "allclose", "amax", "amin", "any", "arange", "argmax", "argmin", "argsort",
    "argwhere", "around", "array", "array_equal", "asanyarray", "asarray", "ascontiguousarray", "asfortranarray",
    "atleast_1d", "atleast_2d", "atleast_3d", "average", "bincount", "bool_", "broadcast_arrays", "broadcast_to",
    "can_cast", "ceil", "clip", "complex128", "complex64", "concatenate", "copy", "copyto", "cos", "count_nonzero",
    "cumprod", "cumsum", "diag", "diagonal", "diff", "divide", "dot", "dtype", "e", "einsum", "empty", "empty_like",
    "equal", "exp", "expand_dims", "expm1", "eye", "finfo", "flatnonzero", "flip", "float16", "float32", "float64",
    "floating", "floor", "floor_divide", "full", "full_like", "generic", "greater", "greater_equal", "hstack",
    "iinfo", "inexact", "inf", "int16", "int32", "int64", "int8", "int_", "integer", "intp", "isclose", "isfinite",
    "isinf", "isnan", "isscalar", "issubdtype", "less", "less_equal", "lib", "lib.stride_tricks",
    "lib.stride_tricks.as_strided", "lib.stride_tricks.sliding_window_view", "linalg", "linalg.cholesky",
    "linalg.det", "linalg.eigh", "linalg.eigvalsh", "linalg.inv", "linalg.lstsq", "linalg.matrix_power",
    "linalg.matrix_rank", "linalg.norm", "linalg.pinv", "linalg.qr", "linalg.slogdet", "linalg.solve", "linalg.svd",
    "linspace", "log", "log10", "log1p", "log2", "logaddexp", "logical_and", "logical_not", "logical_or", "matmul",
    "max", "maximum", "mean", "min", "minimum", "mod", "moveaxis", "multiply", "nan", "ndarray", "negative",
    "newaxis", "nonzero", "not_equal", "number", "ones", "ones_like", "outer", "pad", "pi", "power", "prod", "random",
    "random.Generator", "random.RandomState", "random.choice", "random.default_rng", "random.normal",
    "random.permutation", "random.rand", "random.randint", "random.randn", "random.random", "random.seed",
    "random.shuffle", "random.standard_normal", "random.uniform", "ravel", "reciprocal", "remainder", "repeat",
    "reshape", "result_type", "roll", "searchsorted", "sign", "signedinteger", "sin", "sort", "split", "sqrt",
    "square", "squeeze", "stack", "std", "subtract", "sum", "swapaxes", "take", "take_along_axis", "tanh",
    "tensordot", "tile", "trace", "transpose", "tril", "triu", "true_divide", "uint16", "uint32", "uint64", "uint8",
    "unique", "unsignedinteger", "var", "vstack", "where", "zeros", "zeros_like",
})

# Host data may enter the device only through these (CuPy's asarray/array copy host arrays to the device).
_HOST_ENTRY_POINTS = frozenset({"asarray", "array", "asanyarray"})


class _StrictNamespace(types.ModuleType):
    """NumPy's API (or a NumPy submodule's) with the strict rules, limited to ``CUPY_NAMES``; wrapped on first use.

    ``path`` is this namespace's place below the top level ("" for ``strict_xp``, "linalg." for
    ``strict_xp.linalg``), so that ``strict_xp.linalg.norm`` is allowed by the entry "linalg.norm". Types and
    constants pass through (``float32``, ``newaxis``, ``pi``, ``finfo``), except that ``ndarray`` is
    ``StrictArray``; submodules (``random``, ``linalg``, ``lib.stride_tricks``) are wrapped too.
    """

    def __init__(self, name: str, numpy_module: types.ModuleType, path: str = "") -> None:
        super().__init__(name, f"NumPy's {numpy_module.__name__} namespace for StrictArray (see strict_backend)")
        self._numpy_module = numpy_module
        self._path = path

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        path = self._path + name
        if path not in CUPY_NAMES:
            raise AttributeError(f"{path} is not in CuPy's namespace "
                                 "(minilottery.testing allows only what CuPy provides)")
        wrapped = self._wrap_attribute(name, getattr(self._numpy_module, name))
        setattr(self, name, wrapped)  # cached: the next lookup does not reach __getattr__
        return wrapped

    def _wrap_attribute(self, name: str, value: Any) -> Any:
        where = f"{self.__name__}.{name}"
        if value is np.ndarray:
            return StrictArray
        if isinstance(value, types.ModuleType):
            return _StrictNamespace(where, value, path=f"{self._path}{name}.")
        if isinstance(value, np.ufunc):
            return _StrictUfunc(value, where)
        if isinstance(value, type) or not callable(value):
            return value  # dtypes, constants, classes such as finfo
        allow_host = self._path == "" and name in _HOST_ENTRY_POINTS
        return _wrap_function(value, where, allow_host=allow_host)

    def __dir__(self) -> list[str]:
        allowed = {path[len(self._path):].split(".")[0] for path in CUPY_NAMES if path.startswith(self._path)}
        return sorted(set(super().__dir__()) | allowed)


strict_xp = _StrictNamespace("strict_xp", np)


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
