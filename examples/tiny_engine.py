"""A DeZero-like engine of about 60 lines (steps 11-16 of the book), with its adapter.

`make_engine(accumulate=True, ordered=True)` returns a fresh engine: its
`Variable`, `Function`, `Add`, `Mul` and `Square`, and `adapter`, an
`Adapter` for it. `accumulate=False` gives the classic bug of step 14 (backward
overwrites a Variable's grad instead of adding to it); `ordered=False` the
classic bug of step 16 (the traversal takes Functions in the order it found
them, not by generation, so a Function may run before all its outputs'
gradients are in). The self-tests fuzz Functions written against each engine.
"""

import weakref
from types import SimpleNamespace

import numpy as np

from gradfuzz.adapters import Adapter


def make_engine(*, accumulate=True, ordered=True):
    """A new engine; see the module docstring."""

    class Variable:
        def __init__(self, data):
            if not isinstance(data, np.ndarray):
                raise TypeError(f"{type(data)} is not supported")
            self.data, self.grad, self.creator, self.generation = data, None, None, 0

        def backward(self):
            if self.grad is None:
                self.grad = np.ones_like(self.data)
            funcs, seen = [self.creator], {self.creator}
            while funcs:
                f = funcs.pop()
                gxs = f.backward(*[y().grad for y in f.outputs])
                gxs = gxs if isinstance(gxs, tuple) else (gxs,)
                for x, gx in zip(f.inputs, gxs, strict=True):
                    x.grad = gx if x.grad is None or not accumulate else x.grad + gx
                    if x.creator is not None and x.creator not in seen:
                        seen.add(x.creator)
                        funcs.append(x.creator)
                        if ordered:
                            funcs.sort(key=lambda g: g.generation)

    class Function:
        def __call__(self, *inputs):
            ys = self.forward(*[x.data for x in inputs])
            ys = ys if isinstance(ys, tuple) else (ys,)
            outputs = [Variable(np.asarray(y)) for y in ys]
            self.generation = max(x.generation for x in inputs)
            for y in outputs:
                y.creator, y.generation = self, self.generation + 1
            self.inputs, self.outputs = inputs, [weakref.ref(y) for y in outputs]
            return outputs if len(outputs) > 1 else outputs[0]

    class Add(Function):
        def forward(self, x0, x1):
            return x0 + x1

        def backward(self, gy):
            return gy, gy

    class Mul(Function):
        def forward(self, x0, x1):
            return x0 * x1

        def backward(self, gy):
            x0, x1 = self.inputs
            return gy * x1.data, gy * x0.data

    class Square(Function):
        def forward(self, x):
            return x**2

        def backward(self, gy):
            return 2 * self.inputs[0].data * gy

    class TinyAdapter(Adapter):
        name = "tiny"
        function_base = Function

        def variable(self, array):
            return Variable(np.array(array, copy=True))

        def call(self, f, variables):
            outputs = f(*variables)
            return list(outputs) if isinstance(outputs, list) else [outputs]

        def backward(self, outputs, gys, *, create_graph=False):
            for y, gy in zip(outputs, gys, strict=True):
                y.grad = np.array(gy, copy=True)
            outputs[0].backward()

        def gradient(self, v):
            return v.grad

        def glue(self):
            return {"add": Add, "mul": Mul}

    return SimpleNamespace(
        Variable=Variable,
        Function=Function,
        Add=Add,
        Mul=Mul,
        Square=Square,
        adapter=TinyAdapter(),
    )
