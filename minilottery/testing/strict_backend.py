"""A CuPy-like test device that runs on the CPU, so that NumPy leaking into the GPU path fails without a GPU.

CuPy arrays refuse to become NumPy arrays by accident: ``np.asarray(gpu_array)`` raises ``TypeError``, and so
does mixing a host ``np.ndarray`` with a device array in ``+`` or in a ``cupy.*`` call. Code that forgets
``xp = get_array_module(x)`` and calls ``np.*`` therefore works on the CPU and breaks on the GPU. This module
gives the CPU the same manners:

* ``StrictArray`` wraps a host ``np.ndarray`` by composition (never by subclassing, which NumPy would convert
  silently) and refuses every implicit conversion: ``__array__`` raises, ``__array_ufunc__ = None`` makes
  ``np.exp(a)`` and ``np_array + a`` raise, and ``__array_function__`` raises so that ``np.sum(a)`` fails too
  (real CuPy would dispatch that call to ``cupy.sum``; here it is reported as a missing ``xp``).
* ``strict_xp`` is a module-like namespace with NumPy's API whose functions take and return ``StrictArray``;
  handing one a raw ``np.ndarray`` raises ``TypeError`` like CuPy's "Unsupported type <class
  'numpy.ndarray'>". Only ``strict_xp.asarray`` / ``array`` / ``asanyarray`` accept host arrays, and they copy
  (as ``cupy.asarray`` copies host data to the device).
* ``make_strict_backend`` / ``strict_device`` plug it into ``minilottery.backend`` as a device.

Like CuPy, reductions and full integer indexing return 0-d arrays, not NumPy scalars, so ``float(a.sum())``
is the explicit way to get a Python number back.

Example::

    with strict_device() as device:
        x = to_device(np.ones((2, 3), np.float32), device)   # a StrictArray
        xp = get_array_module(x)                            # strict_xp
        y = xp.exp(x).sum(axis=1)                           # fine
        np.exp(x)                                           # TypeError, as on the GPU
"""

from __future__ import annotations

import contextlib
import functools
import operator
import types
from collections.abc import Iterator
from typing import Any, Callable

import numpy as np

from minilottery import backend as _backend

_HINT = "move it with minilottery.backend.to_device(a, device), or use xp = get_array_module(x) instead of np"

# Python and NumPy scalars may mix with device arrays (CuPy allows them); host arrays may not.
_SCALARS = (bool, int, float, complex, np.generic)

# ndarray attributes that would hand out host memory behind the array's back; CuPy has none of them.
_BLOCKED_ATTRIBUTES = frozenset({"data", "ctypes", "flat", "tofile", "__array_interface__", "__array_struct__"})


def _host_array_error(obj: Any, where: str) -> TypeError:
    return TypeError(f"Unsupported type {type(obj)!r} in {where}: a host numpy array cannot mix with "
                     f"StrictArray device arrays; {_HINT}")


class _Call:
    """Bookkeeping for one wrapped call: which StrictArrays went in, and which host arrays (if allowed)."""

    __slots__ = ("where", "allow_host", "inputs", "host_inputs")

    def __init__(self, where: str, allow_host: bool = False) -> None:
        self.where = where
        self.allow_host = allow_host
        self.inputs: dict[int, StrictArray] = {}  # id(wrapped ndarray) -> the StrictArray that wrapped it
        self.host_inputs: list[np.ndarray] = []

    def unwrap(self, obj: Any) -> Any:
        """StrictArray -> its ndarray, recursively through lists, tuples and dicts; host arrays are refused."""
        if isinstance(obj, StrictArray):
            self.inputs[id(obj._data)] = obj
            return obj._data
        if isinstance(obj, np.ndarray):
            if not self.allow_host:
                raise _host_array_error(obj, self.where)
            self.host_inputs.append(obj)
            return obj
        kind = type(obj)
        if kind is tuple or kind is list:
            return kind(self.unwrap(item) for item in obj)
        if kind is dict:
            return {key: self.unwrap(value) for key, value in obj.items()}
        if isinstance(obj, _StrictProxy):
            return obj._obj
        return obj

    def wrap(self, obj: Any) -> Any:
        """ndarray or NumPy number -> StrictArray (an ``out=`` array comes back as the caller's own object)."""
        if isinstance(obj, np.ndarray):
            original = self.inputs.get(id(obj))
            if original is not None and original._data is obj:
                return original
            if any(np.may_share_memory(obj, host) for host in self.host_inputs):
                obj = obj.copy()  # host data must be copied "to the device", never aliased
            return StrictArray(obj)
        if isinstance(obj, (np.number, np.bool_)):
            return StrictArray(np.asarray(obj))  # CuPy returns 0-d device arrays, not host scalars
        kind = type(obj)
        if kind is tuple or kind is list:
            return kind(self.wrap(item) for item in obj)
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # named tuples, e.g. linalg.eigh's result
            return kind(*(self.wrap(item) for item in obj))
        if isinstance(obj, (np.random.Generator, np.random.RandomState)):
            return _StrictProxy(obj, self.where)
        return obj


def _call(func: Callable[..., Any], where: str, args: tuple, kwargs: dict, allow_host: bool = False) -> Any:
    call = _Call(where, allow_host)
    args = call.unwrap(args)
    kwargs = call.unwrap(kwargs)
    return call.wrap(func(*args, **kwargs))


def _wrap_function(func: Callable[..., Any], where: str, allow_host: bool = False) -> Callable[..., Any]:
    @functools.wraps(func)
    def strict_function(*args: Any, **kwargs: Any) -> Any:
        return _call(func, where, args, kwargs, allow_host)

    return strict_function


def _operand(other: Any, where: str) -> Any:
    """The NumPy-side value of an operator's other operand, or NotImplemented for types we do not know."""
    if isinstance(other, StrictArray):
        return other._data
    if isinstance(other, _SCALARS):
        return other
    if isinstance(other, np.ndarray):
        raise _host_array_error(other, where)
    return NotImplemented


def _binary(op: Callable[[Any, Any], Any], name: str) -> Callable[[StrictArray, Any], Any]:
    def method(self: StrictArray, other: Any) -> Any:
        value = _operand(other, f"StrictArray.{name}")
        if value is NotImplemented:
            return NotImplemented
        return _wrap_result(op(self._data, value))

    method.__name__ = name
    return method


def _reflected(op: Callable[[Any, Any], Any], name: str) -> Callable[[StrictArray, Any], Any]:
    def method(self: StrictArray, other: Any) -> Any:
        value = _operand(other, f"StrictArray.{name}")
        if value is NotImplemented:
            return NotImplemented
        return _wrap_result(op(value, self._data))

    method.__name__ = name
    return method


def _inplace(op: Callable[[Any, Any], Any], name: str) -> Callable[[StrictArray, Any], Any]:
    def method(self: StrictArray, other: Any) -> Any:
        value = _operand(other, f"StrictArray.{name}")
        if value is NotImplemented:
            return NotImplemented
        op(self._data, value)  # writes into the wrapped buffer, so views of it see the change
        return self

    method.__name__ = name
    return method


def _unary(op: Callable[[Any], Any], name: str) -> Callable[[StrictArray], Any]:
    def method(self: StrictArray) -> Any:
        return _wrap_result(op(self._data))

    method.__name__ = name
    return method


def _wrap_result(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return StrictArray(obj)
    if isinstance(obj, (np.number, np.bool_)):
        return StrictArray(np.asarray(obj))
    if type(obj) is tuple:
        return tuple(_wrap_result(item) for item in obj)
    return obj


def _index(key: Any) -> Any:
    """An index for the wrapped ndarray: StrictArrays unwrapped, host arrays refused (CuPy refuses them too)."""
    return _Call("StrictArray indexing").unwrap(key)


class StrictArray:
    """A "device" array for tests: a host ``np.ndarray`` (``_data``) that refuses implicit conversion to NumPy.

    ``StrictArray(ndarray)`` wraps without copying (slices of it are views, as in CuPy); use
    ``minilottery.backend.to_device`` or ``strict_xp.asarray`` to copy host data in and ``.get()`` or
    ``minilottery.backend.to_numpy`` to copy it out. Methods of ``np.ndarray`` not defined here are delegated,
    with StrictArray arguments unwrapped and array results wrapped.
    """

    __slots__ = ("_data", "__weakref__")
    __array_ufunc__ = None  # np.exp(a) and np_array + a raise TypeError instead of converting
    __hash__ = None  # type: ignore[assignment]  # mutable, like ndarray

    def __init__(self, data: np.ndarray) -> None:
        if not isinstance(data, np.ndarray):
            raise TypeError(f"StrictArray wraps a numpy.ndarray, got {type(data)!r}; "
                            "use strict_xp.asarray(x) to make one from other data")
        self._data = data

    # --- refusing conversion ----------------------------------------------------------------------------
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct "
                        f"a NumPy array explicitly (StrictArray, like cupy.ndarray); {_HINT}")

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        name = getattr(func, "__name__", repr(func))
        raise TypeError(f"numpy.{name} was called on a StrictArray (a device array); "
                        f"call xp.{name} with xp = minilottery.backend.get_array_module(x) instead")

    def get(self, stream: Any = None, order: str = "C", out: np.ndarray | None = None) -> np.ndarray:
        """A host ``np.ndarray`` copy (``cupy.ndarray.get``); into ``out`` when given."""
        if out is not None:
            out[...] = self._data
            return out
        return np.array(self._data, order=order, copy=True)

    def set(self, arr: np.ndarray, stream: Any = None) -> None:
        """Copies host ``arr`` into this array (``cupy.ndarray.set``); shapes must match."""
        if not isinstance(arr, np.ndarray) or arr.shape != self._data.shape:
            raise ValueError(f"set() expects a numpy.ndarray of shape {self._data.shape}, got {type(arr)!r} "
                             f"of shape {getattr(arr, 'shape', None)}")
        self._data[...] = arr

    # --- properties -------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @shape.setter
    def shape(self, value: tuple[int, ...]) -> None:
        self._data.shape = value

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> int:
        return self._data.size

    @property
    def itemsize(self) -> int:
        return self._data.itemsize

    @property
    def nbytes(self) -> int:
        return self._data.nbytes

    @property
    def strides(self) -> tuple[int, ...]:
        return self._data.strides

    @property
    def flags(self) -> Any:
        return self._data.flags

    @property
    def T(self) -> StrictArray:
        return StrictArray(self._data.T)

    # --- generic method delegation ----------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        # Private and dunder names are never delegated: NumPy probes __array_interface__ and friends on the
        # instance, and delegating them would convert silently.
        if name.startswith("_") or name in _BLOCKED_ATTRIBUTES:
            raise AttributeError(f"StrictArray has no attribute {name!r}")
        value = getattr(self._data, name)
        if callable(value):
            return _wrap_function(value, f"StrictArray.{name}")
        return _Call(f"StrictArray.{name}").wrap(value)

    # --- indexing and Python protocols ------------------------------------------------------------------
    def __getitem__(self, key: Any) -> StrictArray:
        return _wrap_result(self._data[_index(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, np.ndarray):
            raise _host_array_error(value, "StrictArray.__setitem__")
        self._data[_index(key)] = _Call("StrictArray.__setitem__").unwrap(value)

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[StrictArray]:
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        for i in range(len(self._data)):
            yield self[i]

    def __contains__(self, value: Any) -> bool:
        return bool((self == value).any())

    def __bool__(self) -> bool:
        return bool(self._data)  # NumPy raises for size > 1, as CuPy does

    def __float__(self) -> float:
        return float(self._data)

    def __int__(self) -> int:
        return int(self._data)

    def __complex__(self) -> complex:
        return complex(self._data)

    def __index__(self) -> int:
        return operator.index(self._data)

    def __format__(self, spec: str) -> str:
        return format(self._data, spec)

    def __repr__(self) -> str:
        # "array([...])" -> "StrictArray([...])", continuation lines shifted to stay aligned
        return "StrictArray" + repr(self._data)[len("array"):].replace("\n", "\n      ")

    def __str__(self) -> str:
        return str(self._data)

    def __copy__(self) -> StrictArray:
        return StrictArray(self._data.copy())

    def __deepcopy__(self, memo: dict) -> StrictArray:
        return StrictArray(self._data.copy())

    def __reduce__(self) -> tuple:
        return (StrictArray, (self._data.copy(),))

    # --- operators (filled in below) --------------------------------------------------------------------
    __neg__ = _unary(operator.neg, "__neg__")
    __pos__ = _unary(operator.pos, "__pos__")
    __abs__ = _unary(operator.abs, "__abs__")
    __invert__ = _unary(operator.invert, "__invert__")

    def __divmod__(self, other: Any) -> Any:
        value = _operand(other, "StrictArray.__divmod__")
        return NotImplemented if value is NotImplemented else _wrap_result(divmod(self._data, value))

    def __rdivmod__(self, other: Any) -> Any:
        value = _operand(other, "StrictArray.__rdivmod__")
        return NotImplemented if value is NotImplemented else _wrap_result(divmod(value, self._data))


_BINARY_OPERATORS = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv,
    "floordiv": operator.floordiv, "mod": operator.mod, "pow": operator.pow, "matmul": operator.matmul,
    "and": operator.and_, "or": operator.or_, "xor": operator.xor,
    "lshift": operator.lshift, "rshift": operator.rshift,
}
_INPLACE_OPERATORS = {
    "add": operator.iadd, "sub": operator.isub, "mul": operator.imul, "truediv": operator.itruediv,
    "floordiv": operator.ifloordiv, "mod": operator.imod, "pow": operator.ipow, "matmul": operator.imatmul,
    "and": operator.iand, "or": operator.ior, "xor": operator.ixor,
    "lshift": operator.ilshift, "rshift": operator.irshift,
}
_COMPARISONS = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le,
                "gt": operator.gt, "ge": operator.ge}

for _name, _op in _BINARY_OPERATORS.items():
    setattr(StrictArray, f"__{_name}__", _binary(_op, f"__{_name}__"))
    setattr(StrictArray, f"__r{_name}__", _reflected(_op, f"__r{_name}__"))
    setattr(StrictArray, f"__i{_name}__", _inplace(_INPLACE_OPERATORS[_name], f"__i{_name}__"))
for _name, _op in _COMPARISONS.items():
    setattr(StrictArray, f"__{_name}__", _binary(_op, f"__{_name}__"))
del _name, _op


class _StrictProxy:
    """Wraps a NumPy object with array-returning methods (a random Generator) so they return StrictArrays."""

    __slots__ = ("_obj", "_where")

    def __init__(self, obj: Any, where: str) -> None:
        self._obj = obj
        self._where = where

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        value = getattr(self._obj, name)
        if callable(value):
            return _wrap_function(value, f"{type(self._obj).__name__}.{name}")
        return value

    def __repr__(self) -> str:
        return f"Strict({self._obj!r})"


class _StrictUfunc:
    """A NumPy ufunc with the strict rules on ``__call__``, ``at``, ``reduce``, ``accumulate``, ``outer``."""

    def __init__(self, ufunc: np.ufunc, where: str) -> None:
        self._ufunc = ufunc
        self._where = where
        self.__name__ = ufunc.__name__
        self.__doc__ = ufunc.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _call(self._ufunc, self._where, args, kwargs)

    def at(self, *args: Any, **kwargs: Any) -> None:
        return _call(self._ufunc.at, f"{self._where}.at", args, kwargs)

    def reduce(self, *args: Any, **kwargs: Any) -> Any:
        return _call(self._ufunc.reduce, f"{self._where}.reduce", args, kwargs)

    def accumulate(self, *args: Any, **kwargs: Any) -> Any:
        return _call(self._ufunc.accumulate, f"{self._where}.accumulate", args, kwargs)

    def reduceat(self, *args: Any, **kwargs: Any) -> Any:
        return _call(self._ufunc.reduceat, f"{self._where}.reduceat", args, kwargs)

    def outer(self, *args: Any, **kwargs: Any) -> Any:
        return _call(self._ufunc.outer, f"{self._where}.outer", args, kwargs)

    def __getattr__(self, name: str) -> Any:  # nin, nout, identity, types, ...
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._ufunc, name)

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
