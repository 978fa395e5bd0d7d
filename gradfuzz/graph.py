"""Running a chain of Functions through the engine, and blaming the right one when it misbehaves."""

import contextlib
import threading

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
            if spec.domain != UNBOUNDED and anywhere(outside(spec.domain, v.data)):
                return False
        return all(finite(v.data) for v in self.variables)


def anywhere(mask):
    """True when the boolean array (or numpy bool) `mask`, made by a ufunc, holds a True.

    Its bytes are 0 and 1: searching them costs less than a reduction on tiny arrays.
    """
    return b"\x01" in mask.tobytes()


def finite(values):
    """True when every element of `values` is finite."""
    return b"\x00" not in np.isfinite(values).tobytes()  # see anywhere


# The domain of a Function that declares none: nothing is outside it.
UNBOUNDED = (None, None)


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
    # Every Variable's data as it was made, taken once (not once per later stage).
    made = [bits(variables[0].data)]
    kinds = "iufc" if variables[0].data.dtype.kind == "c" else "iuf"
    functions = []
    recorder = _Warnings()
    for spec in chain:
        f = _made(spec, names, x)
        y = _forward(spec, f, variables[-1], recorder, names, x)
        # Exactly an ndarray (np.matrix breaks the next Function), of numbers (not bools).
        if type(y.data) is not np.ndarray or y.data.dtype.kind not in kinds:
            raise _invalid(spec.name, "forward", y.data, names, x)
        # Any Variable of the graph so far, not only its own input: blame lands on the caller.
        for old, u in zip(made, variables, strict=True):
            if bits(u.data) != old:
                raise _mutated(spec.name, "forward", names, x)
        functions.append(f)
        variables.append(y)
        made.append(bits(y.data))
    return Graph(chain, functions, variables, recorder.seen)


def _made(spec, names, x):
    """A fresh instance of `spec`'s Function, its factory guarded when that runs user code."""
    if spec.built_without_user_code:
        f = spec.make()
    else:
        f = guard.run(spec.make, function=spec.name, stage="build", chain=names, input=x)
    if not isinstance(f, Function):
        raise Finding(
            Kind.CANNOT_BUILD,
            spec.name,
            f"its factory returned {type(f).__name__}, not a Function",
            chain=names,
            input=x,
        )
    return f


def _forward(spec, f, v, recorder, names, x):
    """f(v), guarded, with floating-point warnings going to `recorder`; a Variable or a Finding.

    Each stage gets the state afresh: a Function that changes numpy's error state
    changes it for itself only.
    """
    try:
        with np.errstate(call=recorder, divide="call", over="call", invalid="call", under="ignore"):
            y = guard.run(lambda: f(v), function=spec.name, stage="forward", chain=names, input=x)
    except Finding as finding:
        if finding.kind == Kind.FORWARD_RAISED and not _raised_inside(finding, f, "forward"):
            raise _invalid(spec.name, "forward", finding.__cause__, names, x) from None
        raise
    if not isinstance(y, Variable):
        raise _invalid(spec.name, "__call__", y, names, x)
    return y


def backprop(graph, gy, traversal="backward", on_range=None):
    """Run `traversal` ("backward" or "backward_recursive") from `graph.y` with upstream `gy`.

    Returns the input's gradient after checking every stage's gradient for type,
    shape, dtype and finiteness, and every input for mutation; raises a Finding
    that names the Function at fault. `on_range(kind, flag)`, when given, hears of
    every overflow and underflow inside backward.
    """
    names = graph.names()
    x = graph.x.data
    before = [bits(v.data) for v in graph.variables]
    graph.y.grad = np.array(gy, copy=True)

    def blame(exc):
        return graph.chain[_culprit(graph, exc)].name

    try:
        with _floating(on_range), _watched(graph, before, names, x):
            guard.run(
                getattr(graph.y, traversal),
                function=blame,
                stage="backward",
                chain=names,
                input=x,
                gy=gy,
                traversal=traversal,
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
        if bits(v.data) != old:
            raise _mutated(spec.name, "backward", names, x)
    return graph.x.grad


@contextlib.contextmanager
def _watched(graph, before, names, x):
    """Check each Function's backward as the traversal calls it, so the culprit is blamed.

    After each call: no Variable's data changed, the upstream gradient gy is
    unchanged, and the returned gradient is usable. Without this, a corrupted
    graph or gy is seen only by the next Function, which then takes the blame.
    """
    for i, f in enumerate(graph.functions):
        f.backward = _checked_backward(graph, i, type(f).backward.__get__(f), before, names, x)
    try:
        yield
    finally:
        for f in graph.functions:
            vars(f).pop("backward", None)


def _checked_backward(graph, i, backward, before, names, x):
    name = graph.chain[i].name

    def checked(gy):
        kept = np.array(gy, copy=True) if isinstance(gy, np.ndarray | np.generic) else None
        threads = threading.enumerate()
        g = backward(gy)
        guard.check_threads(threads, name, "backward", names, x)
        for j, (old, v) in enumerate(zip(before, graph.variables, strict=True)):
            if bits(v.data) != old:
                if j <= i:
                    raise _mutated(name, "backward", names, x)
                raise Finding(
                    Kind.OUTPUT_MUTATED,
                    name,
                    "backward changed the data of "
                    + ("its own output" if j == i + 1 else f"the Variable {j} stages up")
                    + " in place; the graph must stay as forward left it",
                    chain=names,
                    input=x,
                )
        if kept is not None and not same(kept, gy):
            raise Finding(
                Kind.GY_MUTATED,
                name,
                "backward changed its argument gy in place; gy belongs to the output's grad",
                chain=names,
                input=x,
            )
        _check_form(name, graph.variables[i], g, names, x)
        # Every backward is handed an ndarray: the engine's Exp returns a numpy scalar for
        # a 0-d input, which the next Function need not accept (dezero never hands one).
        return np.asarray(g) if isinstance(g, np.generic) else g

    return checked


def _check_form(name, v, g, names, x):
    # Exactly an ndarray or a numpy scalar: a subclass such as np.matrix breaks the next stage.
    if not numeric(g) or (isinstance(g, np.ndarray) and type(g) is not np.ndarray):
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


@contextlib.contextmanager
def _floating(on_range):
    """Floating-point errors inside backward: ignored (judged afterwards), or heard."""
    if on_range is None:
        with np.errstate(all="ignore"):
            yield
        return
    old = np.seterrcall(on_range)
    try:
        with np.errstate(all="ignore", over="call", under="call"):
            yield
    finally:
        np.seterrcall(old)


def _check_gradient(graph, i, names, x):
    name = graph.chain[i].name
    v = graph.variables[i]
    g = v.grad
    _check_form(name, v, g, names, x)
    upstream = graph.variables[i + 1].grad
    if not np.isfinite(g).all() and np.isfinite(upstream).all() and graph.valid():
        found = _finite_partial(graph.chain[i], v.data, upstream, ~np.isfinite(g))
        if found is None:
            guard.reject_example("the true gradient overflows")
        estimate, jacobian = found
        # Judged per unit of upstream gradient too: a correct formula (y / x * gy) may
        # overflow in its Jacobian factor where a tiny gy brings the product back.
        if abs(estimate) > NEAR_OVERFLOW or jacobian > NEAR_OVERFLOW:
            guard.reject_example("the true gradient is within 2^10 of overflow")
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


# A correct backward may overflow in an intermediate value where the true gradient is
# this close to the largest float; only a gradient further from it is a finding.
NEAR_OVERFLOW = float(np.finfo(np.float64).max) / 2**10
# Beyond this many elements, the partial derivatives are not worth one pass each.
_MAX_PARTIALS = 64


def _finite_partial(spec, a, upstream, where):
    """(a finite partial derivative of <upstream, f(a)> at an element in `where`, the
    largest Jacobian entry behind it, per unit of upstream), or None.

    None also where the Jacobian entry overflows, even if a zero upstream hides it.

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
            change = plus.y.data - minus.y.data
            partial = float(np.sum(upstream * change)) / taken
            # A zero in upstream must not hide a Jacobian entry that itself overflows.
            weights = np.where(upstream != 0, upstream, 1.0)
            bound = float(np.sum(np.abs(weights * change))) / abs(taken)
            jacobian = float(np.max(np.abs(change), initial=0.0)) / abs(taken)
        if np.isfinite(partial) and np.isfinite(bound):
            return partial, jacobian
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
    return bits(a) == bits(b)


def bits(a):
    """(shape, dtype, bytes) of `a` as an array: equal exactly where `same` says so."""
    if type(a) is not np.ndarray:  # np.asarray costs more than the rest on tiny arrays
        a = np.asarray(a)
    return a.shape, a.dtype, a.tobytes()
