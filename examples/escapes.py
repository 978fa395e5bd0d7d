"""Wrong Functions whose bugs hide where a fuzzer rarely looks: an adversarial catalogue.

Each class is wrong at some input a fuzzer could draw (a tiny or huge |x|, a
3-d array, more than 64 elements, an all-zero or huge upstream gradient, a
second backward call), and right almost everywhere else. A harness is judged by
how many it finds; `/tmp/catalogue_notes.md` lists, for each one, an input
where it is wrong with the true and the returned gradient.
"""

from typing import ClassVar

import numpy as np

from engine import Function


def _sigmoid(x):
    """The logistic function, accurate for every float64 x (no overflow, no cancellation)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0, e) / (1.0 + e)


class CosFlatNearZero(Function):
    # BUG: a "small-angle" shortcut treats cos as flat for |x| < 1e-5, but d/dx cos = -sin(x) ~ -x
    def forward(self, x):
        return np.cos(x)

    def backward(self, gy):
        x = self.input.data
        return np.where(np.abs(x) < 1e-5, 0.0, -np.sin(x)) * gy


class CubeSharedBuffer(Function):
    # BUG: one class-level buffer reused in place; a 2nd backward clobbers the 1st result and, when
    # gy is that buffer (two CubeSharedBuffer in a row), squares it: d/dx (x^3)^3 at 2 gives 144
    _buf: ClassVar[np.ndarray] = np.empty(0)

    def forward(self, x):
        return x**3

    def backward(self, gy):
        x = self.input.data
        if CubeSharedBuffer._buf.shape != x.shape:
            CubeSharedBuffer._buf = np.empty(x.shape)
        buf = CubeSharedBuffer._buf
        np.multiply(x, x, out=buf)
        buf *= 3
        buf *= gy
        return buf


class RollAxes(Function):
    # BUG: backward rolls the axes the same way as forward; that inverts the roll only for
    # ndim <= 2 (where it is a transpose), so a 3-d gradient lands on the wrong elements
    def forward(self, x):
        return np.moveaxis(x, 0, -1).copy() if x.ndim else x.copy()

    def backward(self, gy):
        gy = np.asarray(gy)
        return np.moveaxis(gy, 0, -1).copy() if gy.ndim else gy.copy()


class TanhCutoff(Function):
    # BUG: "the gradient is below 1e-11 anyway" cut-off: sech^2(x) is ~2e-11 at 13, not 0
    def forward(self, x):
        return np.tanh(x)

    def backward(self, gy):
        x, y = self.input.data, self.output.data
        return np.where(np.abs(x) > 13, 0.0, 1 - y * y) * gy


class SoftsignAsymptoteTypo(Function):
    # BUG: the "large |x|" branch (|x| >= 1e10) forgot to square: 1/(1+|x|), not 1/(1+|x|)^2
    def forward(self, x):
        return x / (1 + np.abs(x))

    def backward(self, gy):
        inv = 1 / (1 + np.abs(self.input.data))
        return np.where(np.abs(self.input.data) >= 1e10, inv, inv * inv) * gy


class AtanViaOutput(Function):
    # BUG: cos(atan x)^2 = 1/(1+x^2) is exact in math, but y ~ pi/2 loses 1/x in rounding:
    # relative error ~2e-16*|x| (2e-6 at 1e10, 100% from 1e16, 1e7x too big at 1e20)
    def forward(self, x):
        return np.arctan(x)

    def backward(self, gy):
        return np.cos(self.output.data) ** 2 * gy


class AsinhSquareOverflow(Function):
    # BUG: x*x overflows above |x| = 1.34e154, so 1/sqrt(1+x*x) returns 0 instead of ~1/|x|
    def forward(self, x):
        return np.arcsinh(x)

    def backward(self, gy):
        x = self.input.data
        return gy / np.sqrt(1 + x * x)


class LeakyReluSlopeMismatch(Function):
    # BUG: forward leaks 0.01 for x < 0, backward copied another layer's 0.1
    def forward(self, x):
        return np.where(x > 0, x, 0.01 * x)

    def backward(self, gy):
        return np.where(self.input.data > 0, 1.0, 0.1) * gy


class ExpShiftedOverflow(Function):
    # BUG: a "shift for accuracy", exp(x + 20) * exp(-20), overflows to inf for 689.8 < x < 709.8
    # where exp(x) is finite
    def forward(self, x):
        return np.exp(x)

    def backward(self, gy):
        return np.exp(self.input.data + 20) * np.exp(-20.0) * gy


class SmoothL1ForgetsBeta(Function):
    # BUG: inside |x| < beta the slope is x / beta; backward returns x (2x too big for beta = 2)
    def __init__(self, beta):
        self.beta = beta

    def forward(self, x):
        a = np.abs(x)
        return np.where(a < self.beta, 0.5 * x * x / self.beta, a - 0.5 * self.beta)

    def backward(self, gy):
        x = self.input.data
        return np.where(np.abs(x) < self.beta, x, np.sign(x)) * gy


class SiluReluMask(Function):
    # BUG: a ReLU mask copied into SiLU's backward: the true slope for x < 0 is not 0 (-0.072 at -1)
    def forward(self, x):
        return x * _sigmoid(x)

    def backward(self, gy):
        x = self.input.data
        s = _sigmoid(x)
        return np.where(x < 0, 0.0, s * (1 + x * _sigmoid(-x))) * gy


class ReluCapped(Function):
    # BUG: a ReLU-N mask with N = 1e6 "never reached": the slope of max(x, 0) is 1, not 0, past 1e6
    def forward(self, x):
        return np.maximum(x, 0.0)

    def backward(self, gy):
        x = self.input.data
        return ((x > 0) & (x < 1e6)) * gy


class TanhFloat32FastPath(Function):
    # BUG: a "fast path" for more than 64 elements rounds y to float32: relative error ~1e-8
    # near 0, ~1e-3 at |x| = 5, and a zero gradient from |x| ~ 9 (true 6e-8)
    def forward(self, x):
        return np.tanh(x)

    def backward(self, gy):
        y = self.output.data
        if y.size > 64:
            y = y.astype(np.float32)
        return (1 - y * y) * gy


class SinClipsGy(Function):
    # BUG: gy is clipped to [-1e10, 1e10] "to avoid overflow"; any larger upstream gradient is lost
    def forward(self, x):
        return np.sin(x)

    def backward(self, gy):
        return np.cos(self.input.data) * np.clip(gy, -1e10, 1e10)


class SquareRescaledGy(Function):
    # BUG: gy is rescaled by its largest |element| "to avoid overflow"; an all-zero gy gives
    # 0/0 = nan (true 0), and elements 1e308 times smaller than the largest underflow to 0
    def forward(self, x):
        return x * x

    def backward(self, gy):
        s = np.max(np.abs(gy))
        return 2 * self.input.data * (gy / s) * s


class SinPiRoundedPi(Function):
    # BUG: backward uses pi = 3.1415927 (7 decimals): every gradient is 1.5e-8 too big, relatively
    def forward(self, x):
        return np.sin(np.pi * x)

    def backward(self, gy):
        return 3.1415927 * np.cos(np.pi * self.input.data) * gy


class SinAccumulates(Function):
    # BUG: backward accumulates into the instance like Variable.grad does: right on the first
    # call, the sum of all gradients so far (2x on the second call with the same gy) from then on
    _acc = None

    def forward(self, x):
        return np.sin(x)

    def backward(self, gy):
        gx = np.cos(self.input.data) * gy
        self._acc = gx if self._acc is None else self._acc + gx
        return self._acc


class ProdViaDivision(Function):
    # BUG: d prod / d x_i computed as prod / x_i: nan at an exact zero element, where the true
    # slope is the product of the other elements
    def forward(self, x):
        return np.prod(x)

    def backward(self, gy):
        return gy * self.output.data / self.input.data


class SiluDropsTermInTail(Function):
    # BUG: silu' = s + x s (1 - s); the second term is dropped for |x| > 30 as "negligible",
    # but for x < 0 it is the larger one: the gradient is x e^x, not e^x, wrong ~30 times over
    # on -38 < x < -30 (below that float64 rounds s to 0 in both formulas)
    def forward(self, x):
        return x * _sigmoid(x)

    def backward(self, gy):
        x = self.input.data
        s = 0.5 * np.tanh(0.5 * x) + 0.5
        return np.where(np.abs(x) > 30, s, s + x * s * (1 - s)) * gy


FUZZ_FACTORIES = {SmoothL1ForgetsBeta: lambda: SmoothL1ForgetsBeta(2.0)}
