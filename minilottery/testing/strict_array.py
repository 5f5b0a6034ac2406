"""``StrictArray``: a CPU array that, like ``cupy.ndarray``, refuses to become a NumPy array by accident.

A ``StrictArray`` wraps a host ``np.ndarray`` by composition (never by subclassing, which NumPy would convert
silently) and refuses every implicit conversion: ``__array__`` raises, ``__array_ufunc__ = None`` makes
``np.exp(a)`` and ``np_array + a`` raise, and ``__array_function__`` raises so that ``np.sum(a)`` fails too (real
CuPy would dispatch that call to ``cupy.sum``; here it is reported as a missing ``xp``).

Every call that crosses the wrapper goes through ``_Call``: StrictArray arguments are unwrapped, host
``np.ndarray`` arguments are refused (CuPy's "Unsupported type <class 'numpy.ndarray'>"), and array results come
back wrapped. Like CuPy, reductions and full integer indexing return 0-d arrays, not NumPy scalars, so
``float(a.sum())`` is the explicit way to get a Python number back.

``strict_backend`` builds the ``xp`` namespace and the backend around this class.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

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


def _operand(other: Any, where: str) -> Any:
    """The NumPy-side value of an operator's other operand, or NotImplemented for types we do not know."""
    if isinstance(other, StrictArray):
        return other._data
    if isinstance(other, _SCALARS):
        return other
    if isinstance(other, np.ndarray):
        raise _host_array_error(other, where)
    return NotImplemented


def _binary(op: Callable[[Any, Any], Any], name: str, *, reflected: bool = False,
            inplace: bool = False) -> Callable[[StrictArray, Any], Any]:
    """The method ``name``: ``op(self, other)``, or ``op(other, self)`` if ``reflected``, on the wrapped arrays.

    A host ndarray operand raises; an operand of a type we do not know returns NotImplemented, so that Python
    asks the other operand. An ``inplace`` method writes into the wrapped buffer and returns ``self``.
    """
    where = f"StrictArray.{name}"

    def method(self: StrictArray, other: Any) -> Any:
        value = _operand(other, where)
        if value is NotImplemented:
            return NotImplemented
        if inplace:
            op(self._data, value)  # writes into the wrapped buffer, so views of it see the change
            return self
        return _wrap_result(op(value, self._data) if reflected else op(self._data, value))

    method.__name__ = name
    return method


def _on_data(func: Callable[[np.ndarray], Any], name: str) -> Callable[[StrictArray], Any]:
    """The method ``name``: ``func`` of the wrapped ndarray, with array and NumPy-scalar results wrapped."""
    def method(self: StrictArray) -> Any:
        return _wrap_result(func(self._data))

    method.__name__ = name
    return method


def _metadata(name: str) -> property:
    """A read-only property: the wrapped ndarray's ``name`` (metadata such as ``dtype``, never its memory)."""
    return property(lambda self: getattr(self._data, name), doc=f"``numpy.ndarray.{name}`` of the wrapped array.")


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

    dtype = _metadata("dtype")
    ndim = _metadata("ndim")
    size = _metadata("size")
    itemsize = _metadata("itemsize")
    nbytes = _metadata("nbytes")
    strides = _metadata("strides")
    flags = _metadata("flags")

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

    def __iter__(self) -> Iterator[StrictArray]:
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        for i in range(len(self._data)):
            yield self[i]

    def __contains__(self, value: Any) -> bool:
        return bool((self == value).any())

    # Answered by the wrapped ndarray; bool(), float(), int() raise for more than one element, as in CuPy.
    __len__ = _on_data(len, "__len__")
    __bool__ = _on_data(bool, "__bool__")
    __float__ = _on_data(float, "__float__")
    __int__ = _on_data(int, "__int__")
    __complex__ = _on_data(complex, "__complex__")
    __index__ = _on_data(operator.index, "__index__")
    __str__ = _on_data(str, "__str__")

    def __format__(self, spec: str) -> str:
        return format(self._data, spec)

    def __repr__(self) -> str:
        # "array([...])" -> "StrictArray([...])", continuation lines shifted to stay aligned
        return "StrictArray" + repr(self._data)[len("array"):].replace("\n", "\n      ")

    def __copy__(self) -> StrictArray:
        return StrictArray(self._data.copy())

    def __deepcopy__(self, memo: dict) -> StrictArray:
        return self.__copy__()  # a copy of the buffer is already a deep copy of its numbers

    def __reduce__(self) -> tuple:
        return (StrictArray, (self._data.copy(),))

    # --- operators (the binary ones are filled in below) ------------------------------------------------
    __neg__ = _on_data(operator.neg, "__neg__")
    __pos__ = _on_data(operator.pos, "__pos__")
    __abs__ = _on_data(operator.abs, "__abs__")
    __invert__ = _on_data(operator.invert, "__invert__")
    __divmod__ = _binary(divmod, "__divmod__")
    __rdivmod__ = _binary(divmod, "__rdivmod__", reflected=True)


# name -> (operator, in-place operator): each name gives StrictArray __name__, __rname__ and __iname__.
_ARITHMETIC = {
    "add": (operator.add, operator.iadd), "sub": (operator.sub, operator.isub),
    "mul": (operator.mul, operator.imul), "truediv": (operator.truediv, operator.itruediv),
    "floordiv": (operator.floordiv, operator.ifloordiv), "mod": (operator.mod, operator.imod),
    "pow": (operator.pow, operator.ipow), "matmul": (operator.matmul, operator.imatmul),
    "and": (operator.and_, operator.iand), "or": (operator.or_, operator.ior), "xor": (operator.xor, operator.ixor),
    "lshift": (operator.lshift, operator.ilshift), "rshift": (operator.rshift, operator.irshift),
}
_COMPARISONS = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le,
                "gt": operator.gt, "ge": operator.ge}

for _name, (_op, _inplace_op) in _ARITHMETIC.items():
    setattr(StrictArray, f"__{_name}__", _binary(_op, f"__{_name}__"))
    setattr(StrictArray, f"__r{_name}__", _binary(_op, f"__r{_name}__", reflected=True))
    setattr(StrictArray, f"__i{_name}__", _binary(_inplace_op, f"__i{_name}__", inplace=True))
for _name, _op in _COMPARISONS.items():
    setattr(StrictArray, f"__{_name}__", _binary(_op, f"__{_name}__"))
del _name, _op, _inplace_op


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
