"""The adapter for this project's stage-1 engine (one input, one output per Function)."""

import numpy as np

import engine
from gradfuzz.adapters.base import Adapter


class Stage1(Adapter):
    """engine.Function: one input, one output, ndarray gradients, no higher order.

    Every backward is handed an ndarray: a numpy scalar that a backward returns
    for a 0-d input (the engine's own Exp and Square do) becomes a 0-d array
    before the next Function sees it. The engine itself is unchanged.
    """

    name = "engine"
    function_base = engine.Function
    max_inputs = 1

    def variable(self, array):
        return engine.Variable(np.array(array, copy=True))

    def call(self, f, variables):
        if len(variables) != 1:
            raise TypeError(f"an engine.Function takes one input, not {len(variables)}")
        return [f(variables[0])]

    def backward(self, outputs, gys, *, create_graph=False):
        if create_graph:
            raise NotImplementedError("the stage-1 engine has no higher-order gradients")
        (y,), (gy,) = outputs, gys
        wrapped = _hand_arrays(y)
        try:
            y.grad = np.array(gy, copy=True)
            y.backward()
        finally:
            for f in wrapped:
                vars(f).pop("backward", None)

    def gradient(self, v):
        return v.grad


def _hand_arrays(y):
    """Wrap each Function's backward below `y` so that what it returns is an ndarray."""
    wrapped, v = [], y
    while v.creator is not None and v.creator not in wrapped:
        f = v.creator
        original = type(f).backward.__get__(f)
        f.backward = lambda gy, original=original: _as_ndarray(original(gy))
        wrapped.append(f)
        v = f.input
    return wrapped


def _as_ndarray(g):
    return np.asarray(g) if isinstance(g, np.generic) else g
