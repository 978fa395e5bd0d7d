"""Cases for the graph properties: one call of a Function with several inputs and parameters."""

from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException
from hypothesis.extra import numpy as hnp

from gradfuzz import graph as chains
from gradfuzz.dag import Call, SecondCall, describe
from gradfuzz.findings import Finding, Kind
from gradfuzz.guard import reject_example
from strategies._validate import check_bounds
from strategies.arrays import directions, shapes, upstream_grads, valid_input
from strategies.params import broadcastable_shapes

# Moderate values: a product or a square of the chains' full range (2^+-1000) overflows in
# a correct backward's intermediate; the chain properties keep testing the extremes.
_VALUES = st.one_of(
    st.builds(
        lambda m, e: m * 2.0**e,
        st.floats(-4, 4).filter(lambda m: abs(m) >= 0.5),
        st.integers(-20, 20),
    ),
    st.floats(-4, 4).filter(lambda m: m == 0 or abs(m) >= 2.0**-20),
    st.sampled_from([0.0, 1.0, -1.0]),
)


@dataclass(frozen=True, eq=False)
class GraphCase:
    """One example: a Call, its packed inputs x, the packed upstream gradient and direction."""

    target: str
    call: Call
    chain: tuple
    x: np.ndarray
    gy: np.ndarray
    d: np.ndarray
    _graph: list = field(default_factory=list, repr=False, compare=False)

    def take_graph(self):
        """The packed forward pass drawn with this case, once; None after."""
        return self._graph.pop() if self._graph else None

    def names(self):
        return [self.target]

    def describe(self):
        """The inputs and parameters, for a Finding."""
        return describe(self.call, self.call.unpack(self.x))

    def _repr_pretty_(self, printer, cycle):  # Hypothesis prints examples with this
        printer.text(repr(self))

    def __repr__(self):
        arrays = self.call.unpack(self.x)
        shown = ", ".join(f"v{i}={a.tolist()!r}" for i, a in enumerate(arrays))
        dag = f", dag={self.call.program_text()}" if self.call.program else ""
        return f"GraphCase({self.target}({shown}), parameters={self.call.parameters()}{dag})"


def graph_cases(*, target, max_dims=4, max_side=4):
    """Cases for the Spec `target` (a Function of any adapter), called alone on drawn inputs.

    The input shapes come first (`target.signature.shapes`, else broadcast-compatible
    shapes, or one shared shape when the adapter `broadcasts` not, of `min_ndim` to
    `max_dims` (default 4) dims of side 1 to `max_side` (default 4)), then the
    Function's parameters from its factory `lambda draw, shapes: ...`, then integer
    inputs, then float values (0, or of magnitude 2^-20 to 2^22, most in [-4, 4])
    pulled into the domain, gy and d.
    Shrinks toward smaller shapes, then the factory's simplest parameters, then values.
    """
    sig = target.signature
    drawn = None
    if sig.shapes is None and sig.build is None:
        broadcasts = target.adapter is None or target.adapter.broadcasts
        drawn = broadcastable_shapes(
            count=sig.inputs if broadcasts else 1,
            min_dims=sig.min_ndim,
            max_dims=max(min(max_dims, sig.max_ndim), sig.min_ndim),
            max_side=max_side,
        )
        if not broadcasts:  # an engine without broadcasting: every input has one shape
            drawn = drawn.map(lambda found: found * sig.inputs)
    return _graph_cases(target, drawn)


@st.composite
def _graph_cases(draw, target, drawn):
    sig = target.signature
    try:
        if sig.build is not None:
            function, shapes = sig.build(draw)
        else:
            shapes = draw(drawn) if drawn is not None else sig.shapes(draw)
        shapes = tuple(tuple(s) for s in shapes)
        if len(shapes) != sig.inputs:
            raise ValueError(f"it gave {len(shapes)} shapes for {sig.inputs} inputs")
        if sig.build is None:
            function = target.make_for(draw, shapes)
    except HypothesisException:
        raise  # the factory's own assume(), or an invalid draw
    except Exception as e:
        raise _cannot_build(target, e) from e
    arrays = []
    for i, shape in enumerate(shapes):
        if i in sig.integer:
            low, high = sig.integer[i](shapes)
            arrays.append(draw(hnp.arrays(np.int64, shape, elements=st.integers(low, high - 1))))
        else:
            arrays.append(draw(hnp.arrays(np.float64, shape, elements=_VALUES)))
    return _finish(draw, target, Call(target, function, arrays))


def composable(spec):
    """True when `spec` can be a node of a DAG: its engine has glue Functions, it takes
    float inputs of any one shape and gives that shape back, with no parameters drawn."""
    sig = spec.signature
    return (
        spec.adapter is not None
        and spec.adapter.glue() is not None
        and not spec.chainable
        and sig.shapes is None
        and sig.build is None
        and not sig.integer
        and not sig.constant
        and not spec.draws_parameters
    )


def dag_cases(*, target, max_steps=5, max_leaves=2, max_dims=2, max_side=3):
    """DAGs in which Variables are used more than once, around the Spec `target`.

    `max_leaves` (default 2) inputs of one drawn shape (up to `max_dims`, default 2,
    dims of side up to `max_side`, default 3); then 1 to `max_steps` (default 5)
    steps, each the Function under test or the engine's glue `add` or `mul`,
    on operands drawn from every value so far, repeats allowed; every value no
    step used is then added into the output, so each branch counts. Shrinks toward
    fewer steps, toward the Function under test, toward the first input.
    """
    check_bounds(max_steps=max_steps, max_leaves=max_leaves, max_dims=max_dims, max_side=max_side)
    if min(max_steps, max_leaves, max_side) < 1:
        raise ValueError(
            f"max_steps={max_steps}, max_leaves={max_leaves} and max_side={max_side} "
            "must be at least 1"
        )
    return _dag_cases(target, max_steps, max_leaves, shapes(max_dims=max_dims, max_side=max_side))


@st.composite
def _dag_cases(draw, target, max_steps, max_leaves, drawn_shapes):
    arity = target.signature.inputs
    # Operands are drawn as free integers taken modulo the values there are so far,
    # so that deleting a step while shrinking leaves every later step valid.
    step = st.tuples(
        st.sampled_from(["f", "add", "mul"]),
        st.lists(st.integers(0, 15), min_size=max(arity, 2), max_size=max(arity, 2)),
    )
    steps = draw(st.lists(step, min_size=1, max_size=max_steps), label="dag steps")
    leaves = draw(st.integers(1, max_leaves))
    program, used = [], set()
    for kind, picks in steps:
        available = leaves + len(program)
        operands = tuple(p % available for p in picks[: arity if kind == "f" else 2])
        used.update(operands)
        program.append((kind, operands))
    for v in range(leaves + len(program) - 1):
        if v not in used:  # fold an unused branch into the output
            program.append(("add", (leaves + len(program) - 1, v)))
    shape = draw(drawn_shapes)
    arrays = [draw(hnp.arrays(np.float64, shape, elements=_VALUES)) for _ in range(leaves)]
    try:
        function = target.make()
    except Exception as e:
        raise _cannot_build(target, e) from e
    call = Call(target, function, arrays, free=range(leaves), program=program)
    return _finish(draw, target, call)


def _cannot_build(target, e):
    return Finding(
        Kind.CANNOT_BUILD,
        target.name,
        f"its factory or fuzz spec raised {type(e).__name__}: {e}",
        chain=[target.name],
    )


def _finish(draw, target, call):
    chain = (call.packed_spec(),)
    found = valid_input(chain, call.pack())
    if found is None:
        reject_example("no valid input for this chain")
    z, graph = found
    if call.dtype is np.float64:
        gy = draw(upstream_grads(shape=graph.y.data.shape))
    else:  # values the Function's dtype holds, where the oracle looks; gy of moderate size
        z, gy = _held(z, call.dtype), _held(draw(directions(shape=graph.y.data.shape)), call.dtype)
        graph = chains.build(chain, z)
        if not graph.valid() or not call.finite_in_its_dtype(z):
            reject_example(f"input outside the domain in {call.dtype.__name__}")
    d = draw(directions(shape=z.shape))
    return GraphCase(target.name, call, chain, z, gy, d, [graph])


def _held(values, dtype):
    """`values` rounded to `dtype` (finite: overflow is not a draw), back in float64."""
    with np.errstate(over="ignore"):
        rounded = np.asarray(values).astype(dtype)
    if not np.all(np.isfinite(rounded)):
        reject_example(f"a value overflows {dtype.__name__}")
    return rounded.astype(np.float64)


def second_cases(*, target, max_dims=3, max_side=3):
    """Cases for the second derivative of the Spec `target` (an adapter with
    `higher_order`): a `graph_cases` case (same bounds, defaults 3 and 3), then the
    direction v of s(z) = <backward's gradient for gy, v>, then the direction s is
    judged along; gy and s's upstream gradient are +-[0.5, 1.5], never uniform.
    Shrinks like `graph_cases`, then v.
    """
    return _second_cases(graph_cases(target=target, max_dims=max_dims, max_side=max_side))


@st.composite
def _second_cases(draw, first):
    case = draw(first)
    # Moderate upstream gradients (+-[0.5, 1.5], never uniform): the chains' huge ones,
    # multiplied once more, overflow inside a correct second backward.
    gy = draw(directions(shape=case.gy.shape))
    second = SecondCall(case.call, gy, draw(directions(shape=case.x.shape)))
    chain = (second.packed_spec(),)
    graph = chains.build(chain, case.x)
    if not graph.valid():
        reject_example("input outside the chain's domain")
    d = draw(directions(shape=case.x.shape))
    return GraphCase(case.target, second, chain, case.x, draw(directions(shape=())), d, [graph])
