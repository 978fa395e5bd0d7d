"""Inputs, upstream gradients and directions: ndarrays of random shape and wide-ranging values."""

import functools

import numpy as np
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradfuzz import graph as chains
from gradfuzz.guard import reject_example
from strategies._validate import check_bounds

# Values where real bugs live: around 0 and +-1, below -3, at exp's overflow edge, tiny.
NOTABLE = [0.0, 1.0, -1.0, 3.0, -3.5, 700.0, 709.0, -709.0, 710.0, -745.0, 1e-290, -1e-300]
# Points tried in turn until the chain is valid there; invalid inputs are pulled toward it.
ANCHORS = [0.5, 1.0, 0.25, 2.0, -0.5, 0.1, 1.5, 3.0, -1.0, 10.0, -3.0, 1e-3]
MAX_CONTRACTIONS = 80


@functools.cache
def values():
    """Float64 values from every scale: [-4, 4], +-10^-300..10^300, and notable points.

    Shrinks toward the first branch and toward 0.
    """
    wide = st.builds(
        lambda sign, e, m: sign * m * 10.0**e,
        st.sampled_from([1.0, -1.0]),
        st.integers(-300, 300),
        st.floats(1, 10, exclude_max=True),
    )
    return st.one_of(
        st.floats(-4, 4),
        st.floats(-1000, 1000),
        wide,
        st.sampled_from(NOTABLE),
    )


@functools.cache
def shapes(*, max_dims=2, max_side=4):
    """Array shapes from () up to `max_dims` (default 2) dims of sides 1..`max_side` (default 4).

    Shrinks toward the 0-d shape ().
    """
    check_bounds(max_dims=max_dims, max_side=max_side)
    if max_side < 1:
        raise ValueError(f"max_side={max_side} must be at least 1")
    return hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=1, max_side=max_side)


# Above this many elements, arrays are a drawn fill value with some elements drawn apart,
# as Hypothesis's own arrays() does for large arrays; drawing every element would
# overrun Hypothesis's budget for one example.
SPARSE_ABOVE = 64


# Strategies are built once per distinct argument: Hypothesis validates each new one,
# which would otherwise cost more than drawing from it.
@functools.cache
def _arrays(shape, elements):
    fill = elements if int(np.prod(shape)) > SPARSE_ABOVE else None
    return hnp.arrays(np.float64, shape, elements=elements, fill=fill)


def _signed(magnitudes):
    return st.builds(lambda sign, m: sign * m, st.sampled_from([1.0, -1.0]), magnitudes)


_GY_ELEMENTS = _signed(
    st.builds(lambda u, k: (1.5 + u) * 2.0**k, st.floats(0, 2.5), st.integers(-4, 4))
)
_D_ELEMENTS = _signed(st.floats(0.5, 1.5))


def upstream_grads(*, shape):
    """Upstream gradients gy of `shape`: never zero and never all ones.

    Each element is +-(1.5 + u) * 2^k with u in [0, 2.5] and k in [-4, 4], so a
    backward that forgets to multiply by gy cannot pass. Shrinks toward 1.5.
    """
    return _arrays(tuple(shape), _GY_ELEMENTS)


def directions(*, shape):
    """Directions d of `shape` with every element +-[0.5, 1.5], so no element goes unchecked.

    Shrinks toward all 0.5.
    """
    return _arrays(tuple(shape), _D_ELEMENTS)


def valid_input(chain, raw):
    """Pull `raw` into the chain's valid domain; return (x, its Graph), or None.

    Values outside a declared domain of the first Function are reflected into
    it. Then, while forward is not finite or warns, the offending elements (all
    of them when the chain changes shape) move toward an anchor where the chain
    is valid: their distance d becomes sqrt(d) while over 2, then d / 2.
    """
    x = _reflect(chain[0].domain, raw)
    anchor = _anchor(chain, x.shape)
    if anchor is None:
        return None
    for steps in range(MAX_CONTRACTIONS):
        graph = chains.build(chain, x)
        if graph.valid():
            event(f"domain: input moved {min(steps, 3)}{'+' if steps >= 3 else ''} times")
            return x, graph
        bad = _bad_elements(graph)
        distance = x - anchor
        pulled = np.where(
            np.abs(distance) > 2, np.sign(distance) * np.sqrt(np.abs(distance)), distance / 2
        )
        x = np.where(bad, anchor + pulled, x)
    return None


def _reflect(domain, x):
    lo, hi = domain
    if lo is not None:
        x = np.where(x <= lo, 2 * lo - x, x)
    if hi is not None:
        x = np.where(x >= hi, 2 * hi - x, x)
    return np.asarray(x, dtype=np.float64)


def _anchor(chain, shape):
    lo, hi = chain[0].domain
    if lo is not None and hi is not None:
        preferred = [(lo + hi) / 2]
    else:
        preferred = [lo + 1] if lo is not None else [hi - 1] if hi is not None else []
    for candidate in preferred + ANCHORS:
        if chains.build(chain, np.full(shape, candidate)).valid():
            return candidate
    return None


def _bad_elements(graph):
    shape = graph.x.data.shape
    if graph.warned or any(v.data.shape != shape for v in graph.variables):
        return np.ones(shape, dtype=bool)
    bad = np.zeros(shape, dtype=bool)
    for spec, v in zip(graph.chain, graph.variables, strict=False):
        bad |= chains.outside(spec.domain, v.data)
    for v in graph.variables:
        bad |= ~np.isfinite(v.data)
    return bad if bad.any() else np.ones(shape, dtype=bool)


def inputs(chain, *, max_dims=2, max_side=4, shape=None):
    """Inputs x on which every Function of `chain` is valid, of a drawn or given `shape`.

    `max_dims` (default 2) and `max_side` (default 4) bound the drawn shape,
    which shrinks toward (); values shrink toward 0 within the domain. Rejects
    the example when the chain is valid at none of its anchors.
    """
    return valid_inputs(chain, max_dims=max_dims, max_side=max_side, shape=shape).map(
        lambda found: found[0]
    )


def valid_inputs(chain, *, max_dims=2, max_side=4, shape=None):
    """Like `inputs`, but draws (x, the Graph of the chain's forward pass at x)."""
    if not chain:
        raise ValueError("chain=() is empty: draw inputs for at least one Function")
    shapes_drawn = shapes(max_dims=max_dims, max_side=max_side) if shape is None else None
    return _valid_inputs(tuple(chain), shapes_drawn, shape)


@st.composite
def _valid_inputs(draw, chain, shapes_drawn, shape):
    return draw_valid_input(draw, chain, shapes_drawn, shape)


def draw_valid_input(draw, chain, shapes_drawn, shape):
    """Inside a composite: draw a shape (unless given) and values, and pull them into the domain."""
    if shape is None:
        shape = draw(shapes_drawn)
    raw = draw(_arrays(tuple(shape), values()))
    found = valid_input(chain, raw)
    if found is None:
        reject_example("no valid input for this chain")
    return found
