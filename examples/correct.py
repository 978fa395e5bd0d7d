"""Correct Functions, some of them awkward: kinks, restricted domains, steep growth,
saturation, and functions that are not elementwise. The harness must find nothing here.
"""

import numpy as np

from engine import Function


class Sin(Function):
    def forward(self, x):
        return np.sin(x)

    def backward(self, gy):
        return np.cos(self.input.data) * gy


class Cos(Function):
    def forward(self, x):
        return np.cos(x)

    def backward(self, gy):
        return -np.sin(self.input.data) * gy


class Tanh(Function):
    def forward(self, x):
        return np.tanh(x)

    def backward(self, gy):
        y = self.output.data
        return (1 - y * y) * gy


class Log(Function):
    domain = (0, None)

    def forward(self, x):
        return np.log(x)

    def backward(self, gy):
        return gy / self.input.data


class Sigmoid(Function):
    def forward(self, x):
        return 0.5 * np.tanh(0.5 * x) + 0.5  # saturates without overflowing

    def backward(self, gy):
        y = self.output.data
        return y * (1 - y) * gy


class Relu(Function):
    def forward(self, x):
        return np.maximum(x, 0.0)

    def backward(self, gy):
        return (self.input.data > 0) * gy  # a kink at 0


class Abs(Function):
    def forward(self, x):
        return np.abs(x)

    def backward(self, gy):
        return np.sign(self.input.data) * gy  # a kink at 0


class Sqrt(Function):
    domain = (0, None)

    def forward(self, x):
        return np.sqrt(x)

    def backward(self, gy):
        return gy / (2 * self.output.data)


class SteepExp(Function):
    def forward(self, x):
        return np.exp(10 * x)

    def backward(self, gy):
        return 10 * self.output.data * gy


class Sum(Function):
    def forward(self, x):
        return np.sum(x)

    def backward(self, gy):
        return gy * np.ones_like(self.input.data)


class Cumsum(Function):
    def forward(self, x):
        return np.cumsum(x.ravel()).reshape(x.shape)

    def backward(self, gy):
        flat = np.asarray(gy, dtype=np.float64).ravel()
        return np.cumsum(flat[::-1])[::-1].reshape(self.input.data.shape)


class Softmax(Function):
    """Softmax over all elements."""

    def forward(self, x):
        z = np.exp(x - np.max(x))
        return z / np.sum(z)

    def backward(self, gy):
        y = self.output.data
        return y * (gy - np.sum(gy * y))


class Softplus(Function):
    def forward(self, x):
        return np.logaddexp(0.0, x)

    def backward(self, gy):
        return (0.5 * np.tanh(0.5 * self.input.data) + 0.5) * gy


class Reciprocal(Function):
    domain = (0, None)

    def forward(self, x):
        return 1 / x

    def backward(self, gy):
        return -gy / self.input.data**2


class Cube(Function):
    def forward(self, x):
        return x**3

    def backward(self, gy):
        return 3 * self.input.data**2 * gy


class Mean(Function):
    def forward(self, x):
        return np.mean(x)

    def backward(self, gy):
        x = self.input.data
        return gy * np.ones_like(x) / x.size


class LogSumExp(Function):
    def forward(self, x):
        m = np.max(x)
        return m + np.log(np.sum(np.exp(x - m)))

    def backward(self, gy):
        x = self.input.data
        z = np.exp(x - np.max(x))
        return gy * z / np.sum(z)


class HardTanh(Function):
    def forward(self, x):
        return np.clip(x, -1.0, 1.0)

    def backward(self, gy):
        x = self.input.data
        return ((x > -1) & (x < 1)) * gy  # kinks at -1 and 1


class Atan(Function):
    def forward(self, x):
        return np.arctan(x)

    def backward(self, gy):
        return gy / (1 + self.input.data**2)  # saturates for large |x|


class Log1p(Function):
    domain = (-1, None)

    def forward(self, x):
        return np.log1p(x)

    def backward(self, gy):
        return gy / (1 + self.input.data)
