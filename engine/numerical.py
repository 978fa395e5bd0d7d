"""The seed's central difference (step 4)."""

from engine.core import Variable, as_array


def numerical_diff(f, x, eps=1e-4):
    """Central difference (f(x + eps) - f(x - eps)) / (2 eps), elementwise.

    `f` takes a Variable and returns one; `x` is a Variable holding an array of
    any shape, 0-d included. Every element is moved at once, so the result is
    the derivative only for an elementwise `f`.
    """
    x0 = Variable(as_array(x.data - eps))
    x1 = Variable(as_array(x.data + eps))
    y0 = f(x0)
    y1 = f(x1)
    return (y1.data - y0.data) / (2 * eps)
