"""DeZero Functions with one classic bug each, for the graph properties' self-test.

Each is the book's Function with its backward broken the way people break it;
`tests/test_dezero.py` fuzzes this module and expects every bug found, with the
kind given here, and shrunk to a small case.
"""

import numpy as np
from dezero import Function, Variable
from dezero.functions import broadcast_to, sum_to
from hypothesis import strategies as st

from strategies.params import axes


class MulWrongSecond(Function):
    """The second input's gradient uses x1 where it needs x0: gradient_mismatch of input 1."""

    def forward(self, x0, x1):
        return x0 * x1

    def backward(self, gy):
        x0, x1 = self.inputs
        return sum_to(gy * x1, x0.shape), sum_to(gy * x1, x1.shape)


class MulNotSummedBack(Function):
    """A broadcast input's gradient is not summed back to its shape: wrong_shape."""

    def forward(self, x0, x1):
        return x0 * x1

    def backward(self, gy):
        x0, x1 = self.inputs
        return gy * x1, gy * x0


class SumNegativeAxis(Function):
    """Backward puts the summed axis back at `axis` itself, wrong for a negative one."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        self.x_shape = x.shape
        return x.sum(axis=self.axis)

    def backward(self, gy):
        shape = list(gy.shape)
        shape.insert(self.axis, 1)  # list.insert(-1, 1) lands before the last side
        return broadcast_to(gy.reshape(tuple(shape)), self.x_shape)


class AveragePoolingNonSquare(Function):
    """Average pooling over windows kh x kw (stride = kernel) whose backward divides
    by kh * kh: right for square kernels only."""

    fuzz_spec = {"min_ndim": 4, "max_ndim": 4}  # noqa: RUF012

    def __init__(self, kernel):
        self.kernel = kernel

    def forward(self, x):
        (kh, kw), (n, c, h, w) = self.kernel, x.shape
        self.x_shape = x.shape
        oh, ow = h // kh, w // kw
        return x[:, :, : oh * kh, : ow * kw].reshape(n, c, oh, kh, ow, kw).mean(axis=(3, 5))

    def backward(self, gy):
        kh, kw = self.kernel
        g = np.repeat(np.repeat(gy.data, kh, axis=2), kw, axis=3) / (kh * kh)
        gx = np.zeros(self.x_shape)
        gx[:, :, : g.shape[2], : g.shape[3]] = g
        return Variable(gx)


class SinCutFromTheGraph(Function):
    """Backward's value is right but taken out of the graph: the second derivative is lost."""

    def forward(self, x):
        return np.sin(x)

    def backward(self, gy):
        (x,) = self.inputs
        return gy * Variable(np.asarray(np.cos(x.data)))


class MaxEveryTie(Function):
    """The maximum along an axis whose backward sends gy to every element equal to it,
    as dezero's own Max does: at a tie of k elements the gradient adds up to k * gy.
    Moving the tied maxima together by t moves the maximum by t, not k * t."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        return x.max(axis=self.axis)

    def backward(self, gy):
        (x,) = self.inputs
        y = np.expand_dims(x.data.max(axis=self.axis), self.axis)
        return broadcast_to(gy.reshape(y.shape), x.shape) * Variable(x.data == y)


class MaxFirst(Function):
    """Correct, for contrast: gy goes to the first of the tied maxima (torch.max's choice)."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        return x.max(axis=self.axis)

    def backward(self, gy):
        (x,) = self.inputs
        first = np.expand_dims(x.data.argmax(axis=self.axis), self.axis)
        picked = np.zeros(x.shape)
        np.put_along_axis(picked, first, 1.0, axis=self.axis)
        return broadcast_to(gy.reshape(first.shape), x.shape) * Variable(picked)


class MaxShared(Function):
    """Correct, for contrast: gy shared evenly among the tied maxima (torch.amax's choice)."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        return x.max(axis=self.axis)

    def backward(self, gy):
        (x,) = self.inputs
        y = np.expand_dims(x.data.max(axis=self.axis), self.axis)
        tied = x.data == y
        share = tied / tied.sum(axis=self.axis, keepdims=True)
        return broadcast_to(gy.reshape(y.shape), x.shape) * Variable(share)


class Mul(Function):
    """Correct, for contrast."""

    def forward(self, x0, x1):
        return x0 * x1

    def backward(self, gy):
        x0, x1 = self.inputs
        return sum_to(gy * x1, x0.shape), sum_to(gy * x0, x1.shape)


def _kernel(draw, shapes):
    _, _, h, w = shapes[0]
    return AveragePoolingNonSquare((draw(st.integers(1, h)), draw(st.integers(1, w))))


FUZZ_FACTORIES = {
    SumNegativeAxis: lambda draw, shapes: SumNegativeAxis(
        draw(axes(shapes[0], single=True, allow_none=False))
    ),
    AveragePoolingNonSquare: _kernel,
    **{
        cls: lambda draw, shapes, cls=cls: cls(draw(axes(shapes[0], single=True, allow_none=False)))
        for cls in (MaxEveryTie, MaxFirst, MaxShared)
    },
}
FUZZ_SPEC = {cls: {"min_ndim": 1} for cls in (SumNegativeAxis, MaxEveryTie, MaxFirst, MaxShared)}
