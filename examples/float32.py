"""DeZero Functions that declare float32, correct and with backward off by a relative 1e-3.

`tests/test_dezero.py` fuzzes this module: the tolerance follows float32's epsilon,
so every `...Off` is found (a relative error of 1e-3 is some 8000 float32
epsilons) and no correct one is flagged.
"""

import numpy as np
from dezero import Function
from dezero.functions import cos, exp, matmul, sum_to
from hypothesis import strategies as st

from examples.injected import inject

FLOAT32 = {"dtype": np.float32}


class Sin(Function):
    def forward(self, x):
        return np.sin(x)

    def backward(self, gy):
        return gy * cos(self.inputs[0])


class Exp(Function):
    def forward(self, x):
        return np.exp(x)

    def backward(self, gy):
        return gy * exp(self.inputs[0])


class Tanh(Function):
    def forward(self, x):
        return np.tanh(x)

    def backward(self, gy):
        y = self.outputs[0]()
        return gy * (1 - y * y)


class Mul(Function):
    def forward(self, x0, x1):
        return x0 * x1

    def backward(self, gy):
        x0, x1 = self.inputs
        return sum_to(gy * x1, x0.shape), sum_to(gy * x0, x1.shape)


class MatMul(Function):
    def forward(self, x, w):
        return x.dot(w)

    def backward(self, gy):
        x, w = self.inputs
        return matmul(gy, w.T), matmul(x.T, gy)


CORRECT = (Sin, Exp, Tanh, Mul, MatMul)
OFF = tuple(inject(cls, 1e-3) for cls in CORRECT)
SinOff, ExpOff, TanhOff, MulOff, MatMulOff = OFF


def _matmul_shapes(draw):
    n, k, m = (draw(st.integers(1, 3)) for _ in range(3))
    return (n, k), (k, m)


FUZZ_SPEC = {cls: FLOAT32 for cls in CORRECT + OFF} | {
    cls: {**FLOAT32, "shapes": _matmul_shapes} for cls in (MatMul, MatMulOff)
}
