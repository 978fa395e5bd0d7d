"""Running a chain of Functions through the engine, and blaming the right one when it misbehaves."""

import numpy as np

from engine import Function, Variable
from gradfuzz import guard
from gradfuzz.findings import Finding, Kind


class Graph:
    """One forward pass of a chain: the Function instances and every Variable, x first."""

    def __init__(self, chain, functions, variables, warned):
        self.chain = chain
        self.functions = functions
        self.variables = variables
        self.warned = warned  # a floating-point warning was raised during forward

    @property
    def x(self):
        return self.variables[0]

    @property
    def y(self):
        return self.variables[-1]

    def names(self):
        return [spec.name for spec in self.chain]

    def valid(self):
        """True when no stage warned, every value is finite and inside its declared domain."""
        if self.warned:
            return False
        for spec, v in zip(self.chain, self.variables, strict=False):
            if outside(spec.domain, v.data).any():
                return False
        return all(np.isfinite(v.data).all() for v in self.variables)


def outside(domain, values):
    """Elementwise: True where a value is not in the open interval `domain` = (lo, hi).

    A bound of None is unbounded.
    """
    lo, hi = domain
    values = np.real(values)  # a complex-step input is judged by its real part
    mask = np.zeros(np.shape(values), dtype=bool)
    if lo is not None:
        mask |= values <= lo
    if hi is not None:
        mask |= values >= hi
    return mask


def numeric(value, kinds="biuf"):
    """True for an ndarray or numpy scalar whose dtype kind is one of `kinds`."""
    return isinstance(value, np.ndarray | np.generic) and np.asarray(value).dtype.kind in kinds


class _Warnings:
    def __init__(self):
        self.seen = False

    def __call__(self, kind, flag):
        self.seen = True


def build(chain, x):
    """Call each Function of `chain` in order on a Variable holding a copy of `x`.

    Raises a Finding when a Function cannot be built, raises, hangs, returns
    something other than a numeric ndarray, or changes its input in place.
    """
    names = [spec.name for spec in chain]
    variables = [Variable(np.array(x, copy=True))]
    functions = []
    recorder = _Warnings()
    for spec in chain:
        f = guard.run(spec.make, function=spec.name, stage="build", chain=names, input=x)
        if not isinstance(f, Function):
            raise Finding(
                Kind.CANNOT_BUILD,
                spec.name,
                f"its factory returned {type(f).__name__}, not a Function",
                chain=names,
                input=x,
            )
        v = variables[-1]
        before = v.data.copy()
        old_call = np.seterrcall(recorder)
        try:
            with np.errstate(divide="call", over="call", invalid="call", under="ignore"):
                y = guard.run(
                    lambda f=f, v=v: f(v), function=spec.name, stage="forward", chain=names, input=x
                )
        except Finding as finding:
            if finding.kind == Kind.FORWARD_RAISED and not _raised_inside(finding, f, "forward"):
                raise _invalid(spec.name, "forward", finding.__cause__, names, x) from None
            raise
        finally:
            np.seterrcall(old_call)
        if not isinstance(y, Variable):
            raise _invalid(spec.name, "__call__", y, names, x)
        if not isinstance(y.data, np.ndarray) or not numeric(
            y.data, "biufc" if np.iscomplexobj(x) else "biuf"
        ):
            raise _invalid(spec.name, "forward", y.data, names, x)
        if not same(before, v.data):
            raise _mutated(spec.name, "forward", names, x)
        functions.append(f)
        variables.append(y)
    return Graph(chain, functions, variables, recorder.seen)


def backprop(graph, gy, traversal="backward"):
    """Run `traversal` ("backward" or "backward_recursive") from `graph.y` with upstream `gy`.

    Returns the input's gradient after checking every stage's gradient for type,
    shape, dtype and finiteness, and every input for mutation; raises a Finding
    that names the Function at fault.
    """
    names = graph.names()
    x = graph.x.data
    before = [v.data.copy() for v in graph.variables]
    graph.y.grad = np.array(gy, copy=True)

    def blame(exc):
        return graph.chain[_culprit(graph, exc)].name

    try:
        with np.errstate(all="ignore"):  # overflow is judged below, not printed
            guard.run(
                getattr(graph.y, traversal), function=blame, stage="backward", chain=names, input=x
            )
    except Finding as finding:
        if finding.kind == Kind.BACKWARD_RAISED:
            # A backward that raised on an invalid gy is the victim: blame gy's producer.
            upstream = _culprit(graph, finding.__cause__) + 1
            if upstream < len(graph.functions):
                _check_gradient(graph, upstream, names, x)
        raise
    for i in reversed(range(len(graph.functions))):
        _check_gradient(graph, i, names, x)
    for spec, old, v in zip(graph.chain, before, graph.variables, strict=False):
        if not same(old, v.data):
            raise _mutated(spec.name, "backward", names, x)
    return graph.x.grad


def _check_gradient(graph, i, names, x):
    name = graph.chain[i].name
    v = graph.variables[i]
    g = v.grad
    if not numeric(g):
        raise _invalid(name, "backward", g, names, x)
    if np.shape(g) != v.data.shape:
        raise Finding(
            Kind.WRONG_SHAPE,
            name,
            f"backward returned shape {np.shape(g)} for an input of shape {v.data.shape}",
            chain=names,
            input=x,
        )
    if np.asarray(g).dtype.kind != "f":
        raise Finding(
            Kind.WRONG_DTYPE,
            name,
            f"backward returned dtype {np.asarray(g).dtype}; a gradient must be floating",
            chain=names,
            input=x,
        )
    upstream = graph.variables[i + 1].grad
    if not np.isfinite(g).all() and np.isfinite(upstream).all() and graph.valid():
        estimate = _finite_partial(graph.chain[i], v.data, upstream, ~np.isfinite(g))
        if estimate is None:
            guard.reject_example("the true gradient overflows")
        raise Finding(
            Kind.NONFINITE_GRADIENT,
            name,
            "backward returned a non-finite gradient from a finite upstream gradient, "
            f"where the central difference gives the finite {estimate:.17g}",
            chain=names,
            input=x,
            gradient=np.asarray(g),
            numerical=estimate,
        )


# Beyond this many elements, the partial derivatives are not worth one pass each.
_MAX_PARTIALS = 64


def _finite_partial(spec, a, upstream, where):
    """A finite partial derivative of <upstream, f(a)> at an element in `where`, or None.

    Central differences with a step relative to |a_i| (absolute at 0), one
    element at a time, so that a huge |a_i| is not stepped by less than an ulp.
    None when every one overflows or leaves the domain, or there are too many
    elements to try.
    """
    if a.size > _MAX_PARTIALS:
        return None
    h = 1e-6
    scale = np.where(a != 0, np.abs(a), 1.0)
    for i in np.ndindex(a.shape):
        if not where[i]:
            continue
        step = np.zeros_like(a)
        step[i] = h * scale[i]
        with np.errstate(all="ignore"):
            above, below = a + step, a - step
            plus, minus = build((spec,), above), build((spec,), below)
            if not (plus.valid() and minus.valid()):
                continue
            taken = above[i] - below[i]  # the step that x's rounding really took
            partial = float(np.sum(upstream * (plus.y.data - minus.y.data))) / taken
        if np.isfinite(partial):
            return partial
    return None


def _culprit(graph, exc):
    """The index of the deepest Function whose backward is on `exc`'s traceback (else the last)."""
    index = {id(f): i for i, f in enumerate(graph.functions)}
    culprit = len(graph.functions) - 1
    tb = exc.__traceback__ if exc is not None else None
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if tb.tb_frame.f_code.co_name == "backward" and id(owner) in index:
            culprit = index[id(owner)]
        tb = tb.tb_next
    return culprit


def _raised_inside(finding, f, method):
    """True when the exception behind `finding` passed through `f`'s own `method`."""
    code = getattr(type(f), method).__code__
    tb = finding.__cause__.__traceback__ if finding.__cause__ else None
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return True
        tb = tb.tb_next
    return False


def _invalid(name, stage, value, names, x):
    shown = value if isinstance(value, BaseException) else f"{type(value).__name__} {value!r:.60}"
    return Finding(
        Kind.INVALID_RETURN,
        name,
        f"{stage} returned an invalid value ({shown}); it must return a numeric numpy.ndarray",
        chain=names,
        input=x,
    )


def _mutated(name, stage, names, x):
    return Finding(
        Kind.INPUT_MUTATED,
        name,
        f"{stage} changed its input's data in place; a Function must leave its input alone",
        chain=names,
        input=x,
    )


def same(a, b):
    """Bitwise equality, NaN payloads and signed zeros included."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()
