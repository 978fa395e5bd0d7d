"""Deliberately wrong Functions: each carries the kind of bug people really write.

The harness must find every one of them and shrink it to the function alone.
"""

import numpy as np

from engine import Function


class SinForgetsGy(Function):
    def forward(self, x):
        return np.sin(x)

    def backward(self, gy):
        return np.cos(self.input.data)  # BUG: never multiplies by gy


class CosWrongSign(Function):
    def forward(self, x):
        return np.cos(x)

    def backward(self, gy):
        return np.sin(self.input.data) * gy  # BUG: d/dx cos is -sin


class TanhPrecedence(Function):
    def forward(self, x):
        return np.tanh(x)

    def backward(self, gy):
        y = self.output.data
        return 1 - y * y * gy  # BUG: means 1 - (y*y*gy), not (1 - y*y) * gy


class LogHalfFactor(Function):
    domain = (0, None)

    def forward(self, x):
        return np.log(x)

    def backward(self, gy):
        return gy / (2 * self.input.data)  # BUG: a stray factor 1/2 (that is sqrt's)


class SigmoidNaive(Function):
    def forward(self, x):
        return 0.5 * np.tanh(0.5 * x) + 0.5

    def backward(self, gy):
        e = np.exp(-self.input.data)  # BUG: overflows to inf for x < -709, giving inf/inf = nan
        return e / (1 + e) ** 2 * gy


class SoftplusCutoff(Function):
    def forward(self, x):
        return np.logaddexp(0.0, x)

    def backward(self, gy):
        x = self.input.data
        s = 0.5 * np.tanh(0.5 * x) + 0.5
        return np.where(x < -3, 0.0, s) * gy  # BUG: "negligible" below -3, but it is not


class AbsWrongAboveOne(Function):
    def forward(self, x):
        return np.abs(x)

    def backward(self, gy):
        x = self.input.data
        return (
            np.where(np.abs(x) > 1, x, np.sign(x)) * gy
        )  # BUG: returns x, not sign(x), for |x| > 1


class CumsumWrongDirection(Function):
    def forward(self, x):
        return np.cumsum(x.ravel()).reshape(x.shape)

    def backward(self, gy):
        flat = np.asarray(gy, dtype=np.float64).ravel()
        return np.cumsum(flat).reshape(self.input.data.shape)  # BUG: must accumulate from the end


class SoftmaxElementwise(Function):
    def forward(self, x):
        z = np.exp(x - np.max(x))
        return z / np.sum(z)

    def backward(self, gy):
        y = self.output.data
        return y * (1 - y) * gy  # BUG: the diagonal of the Jacobian only, as if elementwise
