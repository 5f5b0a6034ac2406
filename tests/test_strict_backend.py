"""The strict test device behaves like CuPy where it matters: host NumPy arrays never mix in silently."""

import ast
import copy
import inspect
import pickle

import numpy as np
import pytest

from minilottery import backend
from minilottery.testing import StrictArray, make_strict_backend, strict_device
from minilottery.testing import strict_xp as xp
from minilottery.testing.strict_backend import CUPY_NAMES


def strict(a):
    """A StrictArray copy of host data (what to_device does on the strict device)."""
    return xp.asarray(np.asarray(a))


@pytest.fixture
def a():
    return strict(np.arange(12, dtype=np.float32).reshape(3, 4))


# --- strictness: every implicit host conversion raises TypeError ---------------------------------------------

def test_numpy_conversion_is_refused(a):
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.array(a)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.array([a, a])


def test_numpy_functions_and_ufuncs_are_refused(a):
    with pytest.raises(TypeError):
        np.exp(a)
    with pytest.raises(TypeError):
        np.add.at(a, 0, 1.0)
    with pytest.raises(TypeError, match="xp.sum"):
        np.sum(a)
    with pytest.raises(TypeError, match="xp.reshape"):
        np.reshape(a, -1)
    with pytest.raises(TypeError):
        np.random.default_rng(0).permutation(a)


def test_mixing_host_arrays_in_operators_is_refused(a):
    host = np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
        host + a
    with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
        a + host
    with pytest.raises(TypeError):
        a * np.float32(2.0) * host
    with pytest.raises(TypeError):
        a @ host.T
    with pytest.raises(TypeError):
        a += host
    with pytest.raises(TypeError):
        _ = a < np.array(1.0)  # a 0-d host array is still a host array


def test_mixing_host_arrays_in_xp_calls_is_refused(a):
    host = np.ones((4, 2), np.float32)
    with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
        xp.matmul(a, host)
    with pytest.raises(TypeError):
        xp.concatenate([a, np.ones((1, 4), np.float32)])
    with pytest.raises(TypeError):
        xp.zeros_like(host)
    with pytest.raises(TypeError):
        xp.maximum(a, 0, out=np.empty((3, 4), np.float32))
    with pytest.raises(TypeError):
        xp.add.at(a, np.array([0, 0]), 1.0)
    with pytest.raises(TypeError):
        a.dot(host)


def test_host_index_and_host_value_are_refused(a):
    with pytest.raises(TypeError):
        a[np.array([0, 2])]
    with pytest.raises(TypeError):
        a[np.array([0, 2])] = 1.0
    with pytest.raises(TypeError):
        a[0] = np.zeros(4, np.float32)


def test_strict_array_is_not_an_ndarray_and_hides_its_buffer(a):
    assert not isinstance(a, np.ndarray)
    assert xp.ndarray is StrictArray and isinstance(a, xp.ndarray)
    for name in ("__array_interface__", "__array_struct__", "data", "ctypes"):
        with pytest.raises(AttributeError):
            getattr(a, name)


# --- normal use works, with NumPy's results --------------------------------------------------------------------

def test_arithmetic_and_scalars(a):
    host = a.get()
    assert isinstance(a.get(), np.ndarray) and a.get() is not a._data
    np.testing.assert_array_equal((2 * a + 1 - a / 2).get(), 2 * host + 1 - host / 2)
    np.testing.assert_array_equal((np.float32(2.0) * a).get(), 2 * host)
    np.testing.assert_array_equal((a ** 2 % 5 // 2).get(), host ** 2 % 5 // 2)
    np.testing.assert_array_equal((-a).get(), -host)
    np.testing.assert_array_equal(abs(-a).get(), host)
    np.testing.assert_array_equal((a > 3).get(), host > 3)
    np.testing.assert_array_equal(((a > 3) & (a < 8)).get(), (host > 3) & (host < 8))
    assert (2 * a).dtype == np.float32 and (a * np.float32(2.0)).dtype == np.float32
    quotient, remainder = divmod(a, 3)
    np.testing.assert_array_equal(quotient.get(), host // 3)
    np.testing.assert_array_equal(remainder.get(), host % 3)
    quotient, remainder = divmod(30, a + 1)
    np.testing.assert_array_equal(quotient.get(), 30 // (host + 1))
    np.testing.assert_array_equal(remainder.get(), 30 % (host + 1))


def test_inplace_ops_through_views_change_the_base(a):
    v = a[:, 1:]
    assert isinstance(v, StrictArray)
    v += 1
    np.testing.assert_array_equal(a.get()[:, 0], [0, 4, 8])
    np.testing.assert_array_equal(a.get()[0], [0, 2, 3, 4])
    a[:, 0] *= 10  # __getitem__ view, in-place, then __setitem__
    np.testing.assert_array_equal(a.get()[:, 0], [0, 40, 80])
    b = a
    b -= a  # in-place keeps identity
    assert b is a and float(abs(a).sum()) == 0.0


def test_indexing_with_device_arrays(a):
    rows = strict(np.array([2, 0]))
    mask = a > 5
    np.testing.assert_array_equal(a[rows].get(), a.get()[[2, 0]])
    np.testing.assert_array_equal(a[mask].get(), a.get()[a.get() > 5])
    np.testing.assert_array_equal(a[None, ..., 1].get(), a.get()[None, ..., 1])
    a[mask] = 0.0
    a[rows, 0] = strict(np.array([7.0, 8.0], np.float32))
    assert float(a[2, 0]) == 7.0 and float(a[0, 0]) == 8.0 and float(a.max()) == 8.0
    assert isinstance(a[1, 1], StrictArray) and a[1, 1].ndim == 0  # like CuPy: 0-d array, not a host scalar


def test_reductions_return_device_arrays(a):
    host = a.get()
    s = a.sum(axis=1, keepdims=True)
    assert isinstance(s, StrictArray) and s.shape == (3, 1) and s.dtype == np.float32
    np.testing.assert_array_equal(s.get(), host.sum(axis=1, keepdims=True))
    total = a.sum()
    assert isinstance(total, StrictArray) and total.ndim == 0
    assert float(total) == 66.0 and int(a.argmax()) == 11 and a.max().item() == 11.0
    assert f"{a.mean():.2f}" == "5.50"
    assert bool(a.any()) and not bool((a < 0).all())
    with pytest.raises(ValueError):
        bool(a)


def test_matmul_reshape_transpose_astype(a):
    host = a.get()
    np.testing.assert_allclose((a @ a.T).get(), host @ host.T)
    np.testing.assert_allclose(xp.matmul(a.T, a).get(), host.T @ host)
    np.testing.assert_allclose(a.dot(a.T).get(), host.dot(host.T))
    r = a.reshape(2, 6)  # (3, 4) -> (2, 6), a view
    r[0, 0] = 100.0
    assert float(a[0, 0]) == 100.0
    assert a.transpose(1, 0).shape == (4, 3) and a.ravel().shape == (12,)
    assert a.astype(np.float64).dtype == np.float64
    assert a.astype(xp.float32).dtype == np.float32 and a.copy().dtype == np.float32
    assert len(a) == 3 and [row.shape for row in a] == [(4,)] * 3
    assert a.size == 12 and a.ndim == 2 and a.itemsize == 4 and a.nbytes == 48


def test_xp_functions(a):
    host = a.get()
    np.testing.assert_array_equal(xp.maximum(a, 5).get(), np.maximum(host, 5))
    np.testing.assert_allclose(xp.log(xp.exp(a)).get(), host, rtol=1e-6)
    assert xp.exp(a).dtype == np.float32
    np.testing.assert_array_equal(xp.where(a > 5, a, 0.0).get(), np.where(host > 5, host, 0.0))
    idx = xp.argmax(a, axis=1)
    np.testing.assert_array_equal(
        xp.take_along_axis(a, idx[:, None], axis=1).get(), np.take_along_axis(host, host.argmax(1)[:, None], 1))
    assert xp.pad(a, ((0, 0), (1, 1))).shape == (3, 6)
    z = xp.zeros_like(a)
    assert isinstance(z, StrictArray) and z.dtype == np.float32 and float(z.sum()) == 0.0
    np.testing.assert_allclose(xp.einsum("ij,kj->ik", a, a).get(), host @ host.T)
    assert xp.zeros((2, 3), dtype=xp.float32).dtype == np.float32 and xp.arange(4).shape == (4,)
    assert xp.concatenate([a, a], axis=0).shape == (6, 4)
    rows, cols = xp.nonzero(a > 9)
    assert isinstance(rows, StrictArray) and rows.get().tolist() == [2, 2]
    assert isinstance(xp.linalg.norm(a), StrictArray)
    assert xp.newaxis is None and xp.float32 is np.float32 and xp.pi == np.pi


def test_out_argument_returns_the_same_array(a):
    b = xp.maximum(a, 5.0, out=a)
    assert b is a and float(a.min()) == 5.0


def test_ufunc_methods(a):
    target = xp.zeros(3, dtype=xp.float32)
    xp.add.at(target, strict(np.array([0, 0, 2])), 1.0)
    np.testing.assert_array_equal(target.get(), [2.0, 0.0, 1.0])
    np.testing.assert_array_equal(xp.add.reduce(a, axis=0).get(), a.get().sum(axis=0))
    assert xp.multiply.outer(a[0], a[0]).shape == (4, 4)
    np.testing.assert_array_equal(xp.add.accumulate(a, axis=0).get(), np.add.accumulate(a.get(), axis=0))
    starts = strict(np.array([0, 2]))
    np.testing.assert_array_equal(xp.add.reduceat(a, starts, axis=1).get(), np.add.reduceat(a.get(), [0, 2], axis=1))
    assert xp.add.nin == 2
    with pytest.raises(TypeError):
        xp.add.reduceat(a, np.array([0, 2]), axis=1)


def test_stride_tricks_views_share_memory(a):
    windows = xp.lib.stride_tricks.sliding_window_view(a, (2, 2))  # (3, 4) -> (2, 3, 2, 2)
    assert isinstance(windows, StrictArray) and windows.shape == (2, 3, 2, 2)
    s = a.strides
    strided = xp.lib.stride_tricks.as_strided(a, shape=(2, 2), strides=(s[0], s[1]))
    np.testing.assert_array_equal(strided.get(), a.get()[:2, :2])


def test_asarray_copies_host_data():
    host = np.ones(3, np.float32)
    dev = xp.asarray(host)
    dev += 1
    assert host[0] == 1.0 and float(dev[0]) == 2.0
    assert xp.asarray(dev) is dev
    stacked = xp.array([dev, dev])
    assert isinstance(stacked, StrictArray) and stacked.shape == (2, 3)


def test_random_namespace_returns_device_arrays(monkeypatch):
    monkeypatch.setattr(np.random, "rand", lambda *shape: np.zeros(shape))  # the global one raises in tests
    assert isinstance(xp.random.rand(2, 2), StrictArray)
    rng = xp.random.default_rng(0)
    sample = rng.standard_normal((2, 3), dtype=np.float32)
    assert isinstance(sample, StrictArray) and sample.dtype == np.float32


def test_copy_and_pickle(a):
    for b in (copy.copy(a), copy.deepcopy(a), pickle.loads(pickle.dumps(a))):
        assert isinstance(b, StrictArray)
        np.testing.assert_array_equal(b.get(), a.get())
        b += 1
        assert float(a[0, 0]) == 0.0


def test_public_names_are_importable_from_the_package_and_from_strict_backend():
    from minilottery import testing
    from minilottery.testing import strict_backend

    for name in testing.__all__:
        assert getattr(strict_backend, name) is getattr(testing, name)


# --- the backend -------------------------------------------------------------------------------------------------

def test_backend_round_trip():
    host = np.arange(6, dtype=np.float32).reshape(2, 3)
    with strict_device() as device:
        assert device in backend.available_devices()
        dev = backend.to_device(host, device)
        assert isinstance(dev, StrictArray) and dev.dtype == np.float32
        assert backend.get_array_module(dev) is xp and backend.device_of(dev) == device
        assert backend.get_array_module(host) is np
        assert backend.to_device(dev, device) is dev
        dev += 1
        assert host[0, 0] == 0.0  # to_device copied
        back = backend.to_numpy(dev)
        assert isinstance(back, np.ndarray) and back.dtype == np.float32
        np.testing.assert_array_equal(back, host + 1)
        target = xp.zeros(3, dtype=xp.float32)
        backend.scatter_add(target, strict(np.array([1, 1])), 2.0)
        np.testing.assert_array_equal(target.get(), [0.0, 4.0, 0.0])
        backend.synchronize(device)
    assert "strict" not in backend.available_devices()


def test_make_strict_backend_fields():
    b = make_strict_backend("strict2")
    assert b.name == "strict2" and b.xp is xp and b.array_type is StrictArray
    with pytest.raises(TypeError):
        b.scatter_add(np.zeros(3), np.array([0]), 1.0)


# --- only CuPy's names ---------------------------------------------------------------------------------------------

def _resolve(module, path):
    """``module.a.b.c`` for ``path`` "a.b.c"."""
    for name in path.split("."):
        module = getattr(module, name)
    return module


def test_cupy_names_are_a_sorted_literal_of_numpy_names():
    from minilottery.testing import strict_backend

    tree = ast.parse(inspect.getsource(strict_backend))
    [literal] = [node.value.args[0] for node in ast.walk(tree) if isinstance(node, ast.Assign)
                 and getattr(node.targets[0], "id", None) == "CUPY_NAMES"]
    written = [element.value for element in literal.elts]
    assert written == sorted(set(written)), "keep CUPY_NAMES sorted and without repeats"
    for path in CUPY_NAMES:
        _resolve(np, path)  # strict_xp serves each name from NumPy, so NumPy must have it


def test_cupy_names_are_all_in_cupy():
    cupy = pytest.importorskip("cupy")
    missing = []
    for path in sorted(CUPY_NAMES):
        try:
            _resolve(cupy, path)
        except AttributeError:
            missing.append(path)
    assert missing == [], f"CUPY_NAMES lists names that cupy {cupy.__version__} lacks"


@pytest.mark.parametrize("name", ["busday_count", "is_busday", "busdaycalendar", "loadtxt", "genfromtxt"])
def test_numpy_only_names_are_refused(name):
    assert hasattr(np, name)  # a real NumPy name, which CuPy lacks (CuPy has no datetime or text-file routines)
    message = f"^{name} is not in CuPy's namespace \\(minilottery.testing allows only what CuPy provides\\)$"
    with pytest.raises(AttributeError, match=message):
        getattr(xp, name)
    assert not hasattr(xp, name) and name not in dir(xp)


def test_submodule_names_outside_the_list_are_refused_with_their_path():
    assert xp.linalg.norm is xp.linalg.norm  # allowed, and wrapped once
    with pytest.raises(AttributeError, match=r"^linalg\.busday_count is not in CuPy's namespace"):
        _ = xp.linalg.busday_count
    assert getattr(xp, "get_default_memory_pool", None) is None  # a probe for a CuPy-only name stays quiet
