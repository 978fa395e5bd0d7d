"""Deliberately wrong Functions: each carries the kind of bug people really write.

The harness must find every one of them and shrink it to the function alone.
"""

from typing import ClassVar

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


class SqrtMissingHalf(Function):
    domain = (0, None)

    def forward(self, x):
        return np.sqrt(x)

    def backward(self, gy):
        return gy / np.sqrt(self.input.data)  # BUG: d/dx sqrt(x) is 1 / (2 sqrt(x))


class SoftplusNaive(Function):
    def forward(self, x):
        return np.logaddexp(0.0, x)

    def backward(self, gy):
        e = np.exp(self.input.data)  # BUG: inf / inf = nan once x > 709
        return e / (1 + e) * gy


class SumWrongShape(Function):
    def forward(self, x):
        return np.sum(x)

    def backward(self, gy):
        return gy  # BUG: must broadcast gy back to the input's shape


class AbsIntegerGradient(Function):
    def forward(self, x):
        return np.abs(x)

    def backward(self, gy):
        return (np.sign(self.input.data) * gy).astype(np.int64)  # BUG: truncates to integers


class ReluInPlace(Function):
    def forward(self, x):
        return np.maximum(x, 0.0, out=x)  # BUG: overwrites the input it was given

    def backward(self, gy):
        return (self.input.data > 0) * gy


class SinNoisy(Function):
    def forward(self, x):
        return np.sin(x)

    def backward(self, gy):
        noise = 1 + 1e-6 * np.random.standard_normal()  # BUG: leftover debugging noise
        return np.cos(self.input.data) * gy * noise


class TanhCached(Function):
    _cache: ClassVar[dict] = {}

    def forward(self, x):
        return np.tanh(x)

    def backward(self, gy):
        key = self.input.data.shape  # BUG: caches by shape, so returns another input's gradient
        if key not in TanhCached._cache:
            TanhCached._cache[key] = (1 - self.output.data**2) * gy
        return TanhCached._cache[key]


class SinSlightlyOff(Function):
    def forward(self, x):
        return np.sin(x)

    def backward(self, gy):
        return np.cos(self.input.data) * gy * (1 + 1e-8)  # BUG: a constant off by 1e-8


class LogUsesOutput(Function):
    domain = (0, None)

    def forward(self, x):
        return np.log(x)

    def backward(self, gy):
        return gy / self.output.data  # BUG: divides by y = log(x), not by x


class ReciprocalSign(Function):
    domain = (0, None)

    def forward(self, x):
        return 1 / x

    def backward(self, gy):
        return gy / self.input.data**2  # BUG: d/dx 1/x is -1/x^2


class CubeWrongPower(Function):
    def forward(self, x):
        return x**3

    def backward(self, gy):
        return 3 * self.input.data * gy  # BUG: 3 x, not 3 x^2


class SoftmaxForgetsSum(Function):
    def forward(self, x):
        z = np.exp(x - np.max(x))
        return z / np.sum(z)

    def backward(self, gy):
        return self.output.data * gy  # BUG: drops the - y * sum(gy * y) term


class MeanFirstAxis(Function):
    def forward(self, x):
        return np.mean(x)

    def backward(self, gy):
        x = self.input.data
        n = x.shape[0] if x.ndim else 1  # BUG: len of the first axis, not the size
        return gy * np.ones_like(x) / n
