"""Is a chain's forward holomorphic on complex input? Traced, not measured.

The complex step Im f(x + i t q) / t is the derivative only where the complex
forward is analytic. np.abs, np.sign, np.real or a norm make it non-analytic and
silently drop terms from the result: Softsign x / (1 + |x|) gives 1 / (1 + |x|)
and loses -x sign(x) / (1 + |x|)^2, by an amount that no step size and no
real-arithmetic oracle below the drop's size can reveal. So before the complex step
alone may fail a backward, forward runs once more on a traced complex array that
records every operation that is not holomorphic, and notices when the trace is
lost (np.asarray, a foreign array type): then nothing is shown.
"""

import numpy as np

from engine import Variable
from gradfuzz import guard
from gradfuzz.findings import Finding, Kind

# Ufuncs that are not holomorphic on complex input (comparisons, maximum and the like
# select between analytic branches, which the complex step differentiates correctly).
NOT_HOLOMORPHIC_UFUNCS = {np.absolute, np.sign, np.conjugate}
# Array functions that read a complex array's parts or modulus.
NOT_HOLOMORPHIC_FUNCTIONS = {
    np.real, np.imag, np.angle, np.real_if_close, np.linalg.norm, np.iscomplex, np.isreal,
}  # fmt: skip


class _Trace:
    def __init__(self):
        self.seen = set()  # names of non-holomorphic operations applied to traced data
        self.lost = False  # traced data reached an operation untraced


class _Traced(np.ndarray):
    """An ndarray that reports what is done to it to its _Trace."""

    trace = None

    def __array_finalize__(self, obj):
        self.trace = getattr(obj, "trace", None)

    @property
    def real(self):
        self.trace.seen.add("real")
        return _wrap(np.asarray(self.view(np.ndarray).real), self.trace)

    @property
    def imag(self):
        self.trace.seen.add("imag")
        return _wrap(np.asarray(self.view(np.ndarray).imag), self.trace)

    def conj(self):
        self.trace.seen.add("conjugate")
        return _wrap(self.view(np.ndarray).conj(), self.trace)

    conjugate = conj

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        trace = self.trace
        if ufunc in NOT_HOLOMORPHIC_UFUNCS and any(np.iscomplexobj(a) for a in inputs):
            trace.seen.add(ufunc.__name__)
        if "out" in kwargs:
            kwargs["out"] = tuple(_unwrap(o, trace) for o in kwargs["out"])
        result = getattr(ufunc, method)(*(_unwrap(a, trace) for a in inputs), **kwargs)
        return _wrap(result, trace)

    def __array_function__(self, func, types, args, kwargs):
        trace = self.trace
        if func in NOT_HOLOMORPHIC_FUNCTIONS:
            trace.seen.add(func.__name__)
        result = func(*_unwrap(args, trace), **_unwrap(kwargs, trace))
        return _wrap(result, trace)


def _unwrap(value, trace):
    """`value` with every traced array replaced by its plain view; a plain complex
    array that meets traced data means the trace was lost somewhere."""
    if isinstance(value, _Traced):
        return value.view(np.ndarray)
    if isinstance(value, np.ndarray) and np.iscomplexobj(value):
        trace.lost = True
    if isinstance(value, list | tuple):
        return type(value)(_unwrap(v, trace) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v, trace) for k, v in value.items()}
    return value


def _wrap(value, trace):
    if isinstance(value, np.ndarray) and not isinstance(value, _Traced):
        value = value.view(_Traced)
        value.trace = trace
        return value
    if isinstance(value, tuple):
        return tuple(_wrap(v, trace) for v in value)
    return value


def traced_forward(chain, z):
    """(the non-holomorphic operations forward applied to complex input `z`, whether
    the trace held through every stage). Any trouble in user code counts as lost."""
    trace = _Trace()
    value = _wrap(np.array(z, copy=True), trace)
    names = [spec.name for spec in chain]
    for spec in chain:
        try:
            f = guard.run(spec.make, function=spec.name, stage="build", chain=names, input=z)
            y = guard.run(
                lambda f=f, v=value: f(Variable(v)),
                function=spec.name, stage="forward", chain=names, input=z,
            )  # fmt: skip
        except Finding as finding:
            if finding.kind == Kind.TIMEOUT:
                raise
            return trace.seen, False
        value = getattr(y, "data", None)
        if not isinstance(value, _Traced) or not np.iscomplexobj(value):
            return trace.seen, False
    return trace.seen, not trace.lost


def shown_holomorphic(chain, z):
    """True when forward on `z` applied nothing non-holomorphic and the trace held."""
    seen, held = traced_forward(chain, z)
    return held and not seen
