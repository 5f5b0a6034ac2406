"""Test helpers shipped with minilottery: a CuPy-like strict device that runs on the CPU.

``strict_device()`` registers a backend whose arrays refuse implicit conversion to NumPy, as CuPy's do, so a
stray ``np.*`` call on the device path fails in tests on machines without a GPU. See ``strict_backend``
(the namespace and the device) and ``strict_array`` (the array).
"""

from minilottery.testing.strict_backend import StrictArray, make_strict_backend, strict_device, strict_xp

__all__ = ["StrictArray", "make_strict_backend", "strict_device", "strict_xp"]
