"""Subjects of the sensitivity experiment: correct Functions whose backward is off by a factor."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import Exp
from examples.correct import Sin, Softmax
from strategies import Case, FunctionRegistry, cases

SUBJECTS = {"exp": Exp, "sin": Sin, "softmax": Softmax}


def inject(cls, error):
    """A subclass of `cls` whose backward returns (1 + error) times the right gradient."""

    def backward(self, gy):
        g = cls.backward(self, gy)
        return tuple(gx * (1 + error) for gx in g) if isinstance(g, tuple) else g * (1 + error)

    # Defined, for the fuzzer's discovery, in the module that defines cls.
    return type(f"{cls.__name__}Off", (cls,), {"backward": backward, "__module__": cls.__module__})


def spec_of(cls):
    return FunctionRegistry([cls]).specs()[0]


def with_function(case, cls):
    """The same input, upstream gradient and direction, for `cls` alone."""
    spec = spec_of(cls)
    return Case(spec.name, (spec,), case.x, case.gy, case.d)


def fixed_check_detects(drawn, cls, error, *, rtol, atol):
    """True when a fixed check flags the injected error where it passes the correct function."""
    return any(
        fixed_check_fails(with_function(c, inject(cls, error)), rtol=rtol, atol=atol)
        and fixed_check_fails(with_function(c, cls), rtol=rtol, atol=atol) is False
        for c in drawn
    )


def fixed_check_false_alarms(drawn, cls, *, rtol, atol):
    """How many cases a fixed check flags on the correct `cls`."""
    return sum(bool(fixed_check_fails(with_function(c, cls), rtol=rtol, atol=atol)) for c in drawn)


def generated_cases(cls, *, max_examples=60):
    """The cases the ci profile draws for `cls` alone (derandomized, so the same every run)."""
    drawn = []

    @settings(max_examples=max_examples, derandomize=True, database=None, deadline=None)
    @given(st.data())
    def collect(data):
        drawn.append(data.draw(cases(target=spec_of(cls))))

    collect()
    return drawn


def fixed_check_fails(case, *, rtol, atol, eps=1e-6):
    """A gradcheck-style check: one central difference with step eps, a fixed rtol and atol.

    True when it flags the case; None when the case cannot be judged (the gradient overflows).
    """
    from hypothesis.errors import UnsatisfiedAssumption

    from gradfuzz.graph import backprop, build

    try:
        g = np.asarray(backprop(build(case.chain, case.x), case.gy), dtype=np.float64)
    except UnsatisfiedAssumption:
        return None
    analytic = float(np.sum(g * case.d))
    plus = build(case.chain, case.x + eps * case.d).y.data
    minus = build(case.chain, case.x - eps * case.d).y.data
    numerical = float(np.sum(case.gy * (plus - minus))) / (2 * eps)
    return not abs(analytic - numerical) <= atol + rtol * abs(numerical)


def harness_flags(case, cls, strict=True):
    """True when the harness's gradient check finds `cls` wrong on `case`, None when unjudged."""
    from hypothesis.errors import UnsatisfiedAssumption

    from gradfuzz.checks import check_gradient
    from gradfuzz.findings import Finding

    try:
        check_gradient(with_function(case, cls), strict=strict)
    except Finding:
        return True
    except UnsatisfiedAssumption:
        return None
    return False


def harness_catches(drawn, cls, strict=True):
    """True when the harness's gradient check finds `cls` wrong on any of the drawn cases."""
    return any(harness_flags(case, cls, strict) for case in drawn)


def harness_false_alarms(drawn, cls):
    """(inputs on which the harness flags `cls`, inputs it could judge)."""
    flags = [harness_flags(case, cls) for case in drawn]
    return sum(f is True for f in flags), sum(f is not None for f in flags)
