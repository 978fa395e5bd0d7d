"""Whole test cases: a chain, an input in its domain, an upstream gradient and a direction."""

import functools
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

from strategies.arrays import directions, draw_valid_input, shapes, upstream_grads
from strategies.chains import chains

# Arrays longer than this print their first and last few elements only; the report
# and the repro script keep every element.
PRINTED = 16


def _hex(array):
    flat = np.ravel(array)
    if flat.size <= PRINTED:
        return [float.hex(float(v)) for v in flat]
    head, tail = flat[: PRINTED // 2], flat[-PRINTED // 4 :]
    return [
        *(float.hex(float(v)) for v in head),
        f"... {flat.size - head.size - tail.size} more ...",
        *(float.hex(float(v)) for v in tail),
    ]


@dataclass(frozen=True, eq=False)
class Case:
    """One example: `target` is the name of the Function under test, which `chain` contains."""

    target: str
    chain: tuple
    x: np.ndarray
    gy: np.ndarray
    d: np.ndarray
    # The forward pass the strategy already ran on x, for the first check to reuse once.
    _graph: list = field(default_factory=list, repr=False, compare=False)

    def take_graph(self):
        """The forward pass drawn with this case, once; None after (build a fresh one)."""
        return self._graph.pop() if self._graph else None

    def names(self):
        return [spec.name for spec in self.chain]

    def _repr_pretty_(self, printer, cycle):  # Hypothesis prints examples with this
        printer.text(repr(self))

    def __repr__(self):
        return (
            f"Case(chain={' -> '.join(self.names())}, shape={self.x.shape}, "
            f"x={_hex(self.x)}, gy={_hex(self.gy)}, d={_hex(self.d)})"
        )


def cases(*, target, pool=(), min_length=1, max_length=8, max_dims=4, max_side=8, shape=None):
    """Cases for the Spec `target`, alone or composed with Functions of `pool`.

    Bounds: `min_length` (default 1) to `max_length` (default 8) Functions per
    chain, `max_dims` (default 4)
    and `max_side` (default 8) for the input's shape unless `shape` fixes it.
    The chain is drawn first and shrinks first (toward `target` alone), then
    the shape (toward 0-d), then the values (toward 0 for x, 1.5 for gy, 0.5
    for d).
    """
    pool = tuple(pool)
    shape = None if shape is None else tuple(shape)
    # A Spec compares by class and domain, not by factory: the factories are part of the key.
    factories = tuple(id(spec.factory) for spec in (target, *pool))
    return _cases_built(target, pool, min_length, max_length, max_dims, max_side, shape, factories)


# The properties ask for the same cases on every example: a new strategy per draw is
# validated by Hypothesis each time, which cost more than some Functions' checks. A cached
# entry keeps its Specs alive, so the ids of their factories stay theirs.
@functools.lru_cache(maxsize=1024)
def _cases_built(target, pool, min_length, max_length, max_dims, max_side, shape, factories):
    drawn_chains = chains(
        pool=pool, containing=target, min_length=min_length, max_length=max_length
    )
    drawn_shapes = shapes(max_dims=max_dims, max_side=max_side) if shape is None else None
    return _cases(target, drawn_chains, drawn_shapes, shape)


@st.composite
def _cases(draw, target, drawn_chains, drawn_shapes, shape):
    chain = draw(drawn_chains)
    x, graph = draw_valid_input(draw, chain, drawn_shapes, shape)
    gy = draw(upstream_grads(shape=graph.y.data.shape))
    d = draw(directions(shape=x.shape))
    return Case(target.name, chain, x, gy, d, [graph])
