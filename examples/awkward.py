"""Correct Functions that are hard for a numerical oracle: an adversarial catalogue.

Every backward here is the true derivative of its forward up to a few ulps of
the terms it computes (checked against mpmath; see `/tmp/catalogue_notes.md`),
with the mathematically right one-sided derivatives away from any kink. What
makes each one awkward is said above it: cancellation, saturation, kinks and
ties, oscillation, steep growth, a restricted domain, forms that are not
complex-analytic, or a forward whose complex-step evaluation in numpy is poor.
A harness must flag none of them.
"""

import numpy as np

from engine import Function


def _sigmoid(x):
    """The logistic function, accurate for every float64 x (no overflow, no cancellation)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0, e) / (1.0 + e)


def _softmax_last(a):
    """Softmax along the last axis of an array with ndim >= 1."""
    z = np.exp(a - np.max(a, axis=-1, keepdims=True))
    return z / np.sum(z, axis=-1, keepdims=True)


class TanhRecomputed(Function):
    # Recomputes tanh in backward; 1 - t*t cancels near saturation (abs error ~eps, 0 past 19.1)
    def forward(self, x):
        return np.tanh(x)

    def backward(self, gy):
        t = np.tanh(self.input.data)
        return (1 - t * t) * gy


class SigmoidTanhBackward(Function):
    # Forward via exp(-|x|), backward via 0.5*tanh(0.5x)+0.5: two forms that agree only to ~eps
    def forward(self, x):
        return _sigmoid(x)

    def backward(self, gy):
        s = 0.5 * np.tanh(0.5 * self.input.data) + 0.5
        return s * (1 - s) * gy


class TanhPrime(Function):
    # Forward is tanh' = 1 - tanh^2 (cancels near saturation), backward its derivative
    def forward(self, x):
        t = np.tanh(x)
        return 1 - t * t

    def backward(self, gy):
        t = np.tanh(self.input.data)
        return -2 * t * (1 - t * t) * gy


class SigmoidPrime(Function):
    # Forward is sigmoid' = e/(1+e)^2 with e = exp(-|x|); backward sigmoid'' = -sigmoid' tanh(x/2)
    def forward(self, x):
        e = np.exp(-np.abs(x))
        return e / (1 + e) ** 2

    def backward(self, gy):
        return -self.output.data * np.tanh(0.5 * self.input.data) * gy


class SoftmaxLastAxis(Function):
    # Non-elementwise; y * (gy - sum(y*gy)) cancels when gy mixes magnitudes
    def forward(self, x):
        return _softmax_last(np.atleast_1d(x)).reshape(x.shape)

    def backward(self, gy):
        y = np.atleast_1d(self.output.data)
        g = np.atleast_1d(gy)
        return (y * (g - np.sum(y * g, axis=-1, keepdims=True))).reshape(self.input.data.shape)


class Expm1ViaOutput(Function):
    # exp(x) read back as y + 1, which is exactly 0 below x ~ -37 (true e^x < eps)
    def forward(self, x):
        return np.expm1(x)

    def backward(self, gy):
        return (self.output.data + 1) * gy


class Log1pSmallArgs(Function):
    # Domain (-1, inf); numpy's complex log1p is inaccurate near 1e-7, so complex step misleads
    domain = (-1, None)

    def forward(self, x):
        return np.log1p(x)

    def backward(self, gy):
        return gy / (1 + self.input.data)


class ReluWhere(Function):
    # A kink at 0: elements exactly 0 (subgradient 0) can sit next to huge ones
    def forward(self, x):
        return np.maximum(x, 0.0)

    def backward(self, gy):
        return np.where(self.input.data > 0, gy, 0.0)


class AbsCopysign(Function):
    # A kink at 0 where backward returns a one-sided derivative, +1 at +0.0 and -1 at -0.0
    def forward(self, x):
        return np.abs(x)

    def backward(self, gy):
        return np.copysign(1.0, self.input.data) * gy


class MaxPicksFirst(Function):
    # Reduces to a scalar; with ties the whole gradient goes to the first maximum
    def forward(self, x):
        return np.max(x)

    def backward(self, gy):
        gx = np.zeros(self.input.data.shape)
        gx.flat[np.argmax(self.input.data)] = gy
        return gx


class MinSharesTies(Function):
    # Reduces to a scalar; with ties the gradient is shared equally among the minima
    def forward(self, x):
        return np.min(x)

    def backward(self, gy):
        ties = self.input.data == self.output.data
        return ties * (gy / np.sum(ties))


class SortFlat(Function):
    # A permutation that depends on x: kinks wherever two elements tie
    def forward(self, x):
        return np.sort(x, axis=None).reshape(x.shape)

    def backward(self, gy):
        order = np.argsort(self.input.data, axis=None, kind="stable")
        gx = np.empty(order.size)
        gx[order] = np.ravel(gy)
        return gx.reshape(self.input.data.shape)


class SinAnyMagnitude(Function):
    # sin at huge x: an ulp of x spans many periods, so no finite difference can resolve it
    def forward(self, x):
        return np.sin(x)

    def backward(self, gy):
        return np.cos(self.input.data) * gy


class XSinX(Function):
    # Oscillates with amplitude |x|: the slope sin x + x cos x swings by 2|x| within one period
    def forward(self, x):
        return x * np.sin(x)

    def backward(self, gy):
        x = self.input.data
        return (np.sin(x) + x * np.cos(x)) * gy


class Sinc(Function):
    # sin(x)/x with the limit 1 at 0; (cos x - sin(x)/x)/x cancels near 0, so |x| < 1 uses
    # the Taylor series, and numpy's complex sin(z)/z near 0 is a poor complex step
    _SERIES = tuple((-1) ** k * 2 * k / np.prod(np.arange(1.0, 2 * k + 2)) for k in range(1, 11))

    def forward(self, x):
        safe = np.where(x == 0, 1.0, x)
        return np.where(x == 0, 1.0, np.sin(x) / safe)

    def backward(self, gy):
        x = self.input.data
        small = np.abs(x) < 1
        xs = np.where(small, x, 0.0)
        series = np.zeros(x.shape)
        for c in reversed(self._SERIES):  # sum_k c_k x^(2k-1), by Horner in x^2
            series = series * xs * xs + c
        series = series * xs
        xl = np.where(small, 1.0, x)
        direct = (np.cos(xl) - np.sin(xl) / xl) / xl
        return np.where(small, series, direct) * gy


class TinyMlp(Function):
    # A two-unit tanh network in one Function; its slope crosses 0 (near x = -0.4), where the
    # three terms cancel
    def forward(self, x):
        return 1.5 * np.tanh(0.8 * x - 0.3) - 0.7 * np.tanh(1.2 * x + 0.5) + 0.05 * x

    def backward(self, gy):
        x = self.input.data
        t1, t2 = np.tanh(0.8 * x - 0.3), np.tanh(1.2 * x + 0.5)
        return (1.2 * (1 - t1 * t1) - 0.84 * (1 - t2 * t2) + 0.05) * gy


class LogSumExpRows(Function):
    # Reduces the last axis (output shape differs); shifted by the row max so it never overflows
    def forward(self, x):
        a = np.atleast_1d(x)
        m = np.max(a, axis=-1)
        y = m + np.log(np.sum(np.exp(a - m[..., None]), axis=-1))
        return y.reshape(x.shape[:-1])

    def backward(self, gy):
        a = np.atleast_1d(self.input.data)
        g = np.reshape(gy, a.shape[:-1])[..., None]
        return (_softmax_last(a) * g).reshape(self.input.data.shape)


class SigmoidExpAbs(Function):
    # The stable sigmoid through exp(-|x|) is not complex-analytic: complex step cannot judge it
    def forward(self, x):
        return _sigmoid(x)

    def backward(self, gy):
        e = np.exp(-np.abs(self.input.data))
        return e / (1 + e) ** 2 * gy


class SafeNorm(Function):
    # The L2 norm scaled by max|x| so it never overflows; a kink at x = 0 (subgradient 0 there)
    def forward(self, x):
        m = np.max(np.abs(x))
        if m == 0:
            return np.array(0.0)
        return m * np.sqrt(np.sum((x / m) ** 2))

    def backward(self, gy):
        x = self.input.data
        m = np.max(np.abs(x))
        if m == 0:
            return np.zeros(x.shape)
        u = x / m
        return u / np.sqrt(np.sum(u * u)) * gy


class Log2(Function):
    # Domain (0, inf); the slope 1/(x ln 2) spans 1e-300 to 1e300 over the domain
    domain = (0, None)

    def forward(self, x):
        return np.log2(x)

    def backward(self, gy):
        return gy / self.input.data / np.log(2.0)


class InvSqrt(Function):
    # Domain (0, inf); x^(-1/2) is steep near 0 and its slope underflows near 1e300
    domain = (0, None)

    def forward(self, x):
        return 1 / np.sqrt(x)

    def backward(self, gy):
        return -0.5 * (self.output.data / self.input.data) * gy


class XLogX(Function):
    # Domain (0, inf); the slope log(x) + 1 crosses 0 at 1/e, where it cancels
    domain = (0, None)

    def forward(self, x):
        return x * np.log(x)

    def backward(self, gy):
        return (np.log(self.input.data) + 1) * gy


class ExpTenX(Function):
    # exp(10x): steep, and overflows past x = 70.98 (a domain learned from forward)
    def forward(self, x):
        return np.exp(10 * x)

    def backward(self, gy):
        return 10 * np.exp(10 * self.input.data) * gy


class SoftplusExpAbs(Function):
    # Stable softplus max(x, 0) + log1p(exp(-|x|)): not complex-analytic, and log1p of tiny args
    def forward(self, x):
        return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))

    def backward(self, gy):
        return _sigmoid(self.input.data) * gy


class HardTanhInclusive(Function):
    # Kinks at -1 and 1, where backward returns the inner one-sided slope 1
    def forward(self, x):
        return np.clip(x, -1.0, 1.0)

    def backward(self, gy):
        return (np.abs(self.input.data) <= 1) * gy


class HardSigmoid(Function):
    # clip(0.2x + 0.5, 0, 1): kinks at -2.5 and 2.5, flat outside
    def forward(self, x):
        return np.clip(0.2 * x + 0.5, 0.0, 1.0)

    def backward(self, gy):
        return (np.abs(self.input.data) < 2.5) * 0.2 * gy


class LogCoshStable(Function):
    # |x| + log1p(exp(-2|x|)) - log 2 never overflows but cancels to ~eps near 0, where the
    # value is ~x^2/2: a noisy forward under a smooth backward
    def forward(self, x):
        a = np.abs(x)
        return a + np.log1p(np.exp(-2 * a)) - np.log(2.0)

    def backward(self, gy):
        return np.tanh(self.input.data) * gy


class GeluTanhApproximation(Function):
    # GELU's tanh form 0.5 x (1 + tanh(c (x + 0.044715 x^3))): near x = -7, 1 + tanh(u) is a
    # few ulps of 1, so forward moves in quanta while the factor 0.5 x moves smoothly; a
    # central difference sees only 0.5 x and agrees with itself at every step
    C = np.sqrt(2 / np.pi)

    def forward(self, x):
        return 0.5 * x * (1 + np.tanh(self.C * (x + 0.044715 * x**3)))

    def backward(self, gy):
        x = self.input.data
        t = np.tanh(self.C * (x + 0.044715 * x**3))
        du = self.C * (1 + 3 * 0.044715 * x**2)
        return (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du) * gy
