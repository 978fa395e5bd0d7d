"""The adapters for the `dezero` package: the book's final library (steps 1-60), and
its `dezero.core_simple` (steps 23-32: ndarray gradients, no create_graph).

`pip install dezero` gives 0.0.13, whose `dezero.transforms` uses `np.int` as a
default argument; numpy removed that alias in 1.24, so importing it fails. `load`
imports dezero with `np.int` defined as `int` for the duration of that import
only, and removes it again. The book's repository version (on sys.path) has no
`np.int` and loads the same way.
"""

import contextlib
import importlib
import importlib.util
import sys

import numpy as np

from gradfuzz.adapters.base import Adapter


def load():
    """Import dezero (through the np.int shim) if it can be found; return it or None."""
    if "dezero" in sys.modules:
        return sys.modules["dezero"]
    if importlib.util.find_spec("dezero") is None:
        return None
    with _np_int():
        return importlib.import_module("dezero")


@contextlib.contextmanager
def _np_int():
    added = "int" not in vars(np)
    if added:
        np.int = int
    try:
        yield
    finally:
        if added:
            del np.int


def adapters():
    """The DeZero adapters of the dezero cores already imported (by a target): [] if none.

    `dezero.core_simple` comes first: the package imports one core as `dezero.Function`
    (its `is_simple_core` switch), and a target may import the other one itself.
    """
    found = []
    simple = sys.modules.get("dezero.core_simple")
    if simple is not None and hasattr(simple, "Function"):
        found.append(DeZeroSimple(simple))
    module = sys.modules.get("dezero")
    if hasattr(module, "Function") and (not found or module.Function is not simple.Function):
        found.append(DeZero(module))
    return found


class DeZero(Adapter):
    """dezero.Function: any number of inputs and outputs, Variable gradients, create_graph."""

    name = "dezero"
    higher_order = True

    def __init__(self, module):
        self.module = module
        self.function_base = module.Function

    def variable(self, array):
        return self.module.Variable(np.array(array, copy=True))

    def call(self, f, variables):
        outputs = f(*variables)
        return list(outputs) if isinstance(outputs, list | tuple) else [outputs]

    def backward(self, outputs, gys, *, create_graph=False):
        for y, gy in zip(outputs, gys, strict=True):
            y.grad = self.module.Variable(np.array(gy, copy=True))
        if outputs[0].creator is None:
            return  # a gradient that depends on no input (Add's gy): nothing to propagate
        outputs[0].backward(retain_grad=False, create_graph=create_graph)

    def gradient(self, v):
        g = v.grad
        # A backward that returned a bare ndarray leaves it here; the harness judges it as is.
        return g.data if isinstance(g, self.module.Variable) else g

    def gradient_variable(self, v):
        return v.grad

    def clear(self, v):
        v.cleargrad()

    def glue(self):
        core = sys.modules[self.function_base.__module__]
        return {"add": core.Add, "mul": core.Mul}


class DeZeroSimple(DeZero):
    """dezero.core_simple.Function (steps 23-32): ndarray gradients, no create_graph, and
    no broadcasting (the book adds it to core.py in step 40)."""

    name = "dezero.core_simple"
    higher_order = False
    broadcasts = False

    def backward(self, outputs, gys, *, create_graph=False):
        if create_graph:
            raise NotImplementedError("dezero.core_simple has no higher-order gradients")
        for y, gy in zip(outputs, gys, strict=True):
            y.grad = np.array(gy, copy=True)
        if outputs[0].creator is not None:
            outputs[0].backward(retain_grad=False)

    def gradient(self, v):
        return v.grad

    def gradient_variable(self, v):
        raise NotImplementedError("dezero.core_simple has no higher-order gradients")
