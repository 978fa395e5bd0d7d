"""Variable, Function and the two backward traversals (book steps 1-9)."""

import sys

import numpy as np

# Frames kept free for the Functions' own backward calls and the caller's stack.
_RECURSION_MARGIN = 50


def as_array(x):
    """Return `x` as an ndarray when it is a numpy or Python scalar, else `x` unchanged."""
    if np.isscalar(x):
        return np.array(x)
    return x


class Variable:
    """A box for an ndarray, its gradient and the Function that created it."""

    def __init__(self, data):
        if data is not None and not isinstance(data, np.ndarray):
            raise TypeError(f"{type(data)} is not supported; Variable holds a numpy.ndarray")
        self.data = data
        self.grad = None
        self.creator = None

    def set_creator(self, func):
        self.creator = func

    def backward(self):
        """Backpropagate from this Variable with a loop over pending functions (step 8)."""
        if self.grad is None:
            self.grad = np.ones_like(self.data)
        funcs = [self.creator] if self.creator is not None else []
        while funcs:
            f = funcs.pop()
            x, y = f.input, f.output
            x.grad = f.backward(y.grad)
            if x.creator is not None:
                funcs.append(x.creator)

    def backward_recursive(self):
        """Backpropagate from this Variable by recursion (step 7).

        Raises RecursionError when the chain is deeper than Python's recursion
        limit allows, leaving every gradient below this Variable unset;
        `backward()` has no limit.
        """
        if self.grad is None:
            self.grad = np.ones_like(self.data)
        depth = _chain_depth(self)
        room = sys.getrecursionlimit() - _stack_depth() - _RECURSION_MARGIN
        if depth > room:
            raise _too_deep(depth, room)
        try:
            _backprop(self.creator)
        except RecursionError as e:  # deeper frames than counted: undo, then say why
            v = self
            while v.creator is not None:
                v = v.creator.input
                v.grad = None
            raise _too_deep(depth, room) from e


def _backprop(f):
    if f is None:
        return
    x, y = f.input, f.output
    x.grad = f.backward(y.grad)
    _backprop(x.creator)


def _chain_depth(v):
    depth = 0
    while v.creator is not None:
        depth += 1
        v = v.creator.input
    return depth


def _stack_depth():
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def _too_deep(depth, room):
    return RecursionError(
        f"the chain is {depth} functions deep, too deep for the recursive traversal "
        f"backward_recursive() (room for {max(room, 0)} under sys.getrecursionlimit()="
        f"{sys.getrecursionlimit()}); use backward(), which loops and has no depth limit"
    )


class Function:
    """Base class of every operation: subclasses define forward(x) and backward(gy)."""

    def __call__(self, input):
        if not isinstance(input, Variable):
            raise TypeError(f"{type(input)} is not supported; call a Function on a Variable")
        x = input.data
        y = self.forward(x)
        output = Variable(as_array(y))
        output.set_creator(self)
        self.input = input
        self.output = output
        return output

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__}.forward(x) is not implemented")

    def backward(self, gy):
        raise NotImplementedError(f"{type(self).__name__}.backward(gy) is not implemented")
