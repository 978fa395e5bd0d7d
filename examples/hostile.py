"""Hostile Functions: each tries to end, hang or falsify the run, or to shift the blame.

`tests/test_hostile.py` fuzzes this module and checks that each one becomes one
finding of its own kind against itself, that the two controls keep their
verdicts, and that the run ends by itself with a complete report.
"""

import os
import signal
import sys
import threading
import time

import numpy as np

from engine import Function


class Okay(Function):
    """The correct control: must read ok."""

    def forward(self, x):
        return np.sin(x)

    def backward(self, gy):
        return np.cos(self.input.data) * gy


class WrongControl(Function):
    """The wrong control: must read FAIL: gradient_mismatch."""

    def forward(self, x):
        return np.sin(x)

    def backward(self, gy):
        return -np.cos(self.input.data) * gy


class CallsSysExit(Function):
    def forward(self, x):
        sys.exit(3)

    def backward(self, gy):
        return gy


class CallsOsExit(Function):
    def forward(self, x):
        os._exit(1)

    def backward(self, gy):
        return gy


class RaisesKeyboardInterrupt(Function):
    def forward(self, x):
        raise KeyboardInterrupt

    def backward(self, gy):
        return gy


class SwallowsTheTimeout(Function):
    def forward(self, x):
        while True:
            try:  # noqa: SIM105  # the point: it eats the alarm's exception
                time.sleep(0.01)
            except BaseException:
                pass

    def backward(self, gy):
        return gy


class HangsInC(Function):
    def forward(self, x):
        return x * 0 + sum(range(10**11))  # one C call: no signal handler runs inside it

    def backward(self, gy):
        return gy


class ReplacesAlarmHandler(Function):
    def forward(self, x):
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        while True:
            time.sleep(0.01)

    def backward(self, gy):
        return gy


class LeavesAThread(Function):
    def forward(self, x):
        threading.Thread(target=_forever, name="never-ends").start()
        return np.sin(x)

    def backward(self, gy):
        return np.cos(self.input.data) * gy


def _forever():
    while True:
        time.sleep(0.1)


class ZeroesItsOutput(Function):
    def forward(self, x):
        return np.exp(x)

    def backward(self, gy):
        y = self.output.data
        gx = y * gy
        self.output.data[...] = 0  # corrupts the graph for the next Function down
        return gx


class MutatesGy(Function):
    def forward(self, x):
        return 2.0 * x

    def backward(self, gy):
        gy *= 2.0  # right value, but it overwrites the output's grad
        return gy


class ReturnsMatrix(Function):
    def forward(self, x):
        return np.asmatrix(np.sin(x).reshape(1, -1))  # a 2-d ndarray subclass

    def backward(self, gy):
        return gy


class ReturnsBool(Function):
    def forward(self, x):
        return bool(np.all(x > 0))

    def backward(self, gy):
        return np.zeros_like(self.input.data)


class CachesItsGradient(Function):
    """Stateful: the first gradient computed is returned for every later input."""

    _cache = []  # noqa: RUF012  # the bug: state shared between calls

    def forward(self, x):
        return np.sin(x)

    def backward(self, gy):
        if not CachesItsGradient._cache:
            CachesItsGradient._cache.append(np.cos(self.input.data) * gy)
        cached = CachesItsGradient._cache[0]
        return cached if cached.shape == gy.shape else np.cos(self.input.data) * gy


class Noisy(Function):
    """Correct, but prints 2,000 lines per forward: must read ok, with its output cut."""

    def forward(self, x):
        for i in range(2000):
            print(f"forward line {i} of a very chatty Function")
        return 3.0 * x

    def backward(self, gy):
        return 3.0 * gy
