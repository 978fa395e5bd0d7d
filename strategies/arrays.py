"""Inputs, upstream gradients and directions: ndarrays of random shape and wide-ranging values."""

import functools

import numpy as np
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradfuzz import graph as chains
from gradfuzz.guard import reject_example
from strategies._validate import check_bounds

# Values where real bugs live: around 0 and +-1, small angles, saturation (tanh and the
# sigmoid flatten past 15-20), below -3, at exp's overflow edge (690-710), where x*x
# overflows or underflows (1.34e154, 1.5e-154), 1e10 and subnormals.
NOTABLE = [0.0, 1.0, -1.0, 3.0, -3.5, 1e-6, -1e-6, 15.0, -20.0, 690.0, 700.0, 709.0, -709.0,
           710.0, -745.0, 1e10, 1.5e154, -1.5e154, 1.5e-154, 1e-290, -1e-300]  # fmt: skip
# Points tried in turn until the chain is valid there; invalid inputs are pulled toward it.
ANCHORS = [0.5, 1.0, 0.25, 2.0, -0.5, 0.1, 1.5, 3.0, -1.0, 10.0, -3.0, 1e-3]
MAX_CONTRACTIONS = 80


# The documented input range: every binade of +-[2^-MAX_BINADE, 2^MAX_BINADE].
MAX_BINADE = 1000


@functools.cache
def values():
    """Float64 values that cover every binade of +-[2^-1000, 2^1000], and notable points.

    One branch draws the binades -20..20 (where most bugs live), one the whole
    range, each uniform in the exponent and, within a binade, in the mantissa; one
    draws [-4, 4] and one the notable points. Shrinks toward the first branch and
    toward 1.
    """
    return st.one_of(
        _binades(20),
        _binades(MAX_BINADE),
        st.floats(-4, 4),
        st.sampled_from(NOTABLE),
    )


def _binades(top):
    return st.builds(
        lambda e, m, sign: sign * m * 2.0**e,
        st.integers(-top, top),
        st.floats(1, 2, exclude_max=True),
        st.sampled_from([1.0, -1.0]),
    )


@functools.cache
def shapes(*, max_dims=4, max_side=8):
    """Array shapes from () up to `max_dims` (default 4) dims of sides 1..`max_side` (default 8).

    Two draws in three are small (up to 2 dims of side 4); the third reaches the
    bounds, so arrays of more than SPARSE_ABOVE elements occur. Shrinks toward ().
    """
    check_bounds(max_dims=max_dims, max_side=max_side)
    if max_side < 1:
        raise ValueError(f"max_side={max_side} must be at least 1")
    small = hnp.array_shapes(
        min_dims=0, max_dims=min(max_dims, 2), min_side=1, max_side=min(max_side, 4)
    )
    large = hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=1, max_side=max_side)
    return st.one_of(small, small, large)


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


_MODERATE = st.builds(lambda u, k: (1.5 + u) * 2.0**k, st.floats(0, 2.5), st.integers(-4, 4))
_GY_ELEMENTS = st.one_of(
    _signed(_MODERATE),
    _signed(_MODERATE),
    _signed(_MODERATE),
    st.just(0.0),
    _signed(st.builds(lambda m, e: m * 10.0**e, st.floats(1, 10), st.integers(-300, 300))),
)
_D_ELEMENTS = _signed(st.floats(0.5, 1.5))


def _twisted(array, amount):
    # A fixed, uneven factor per element, so that even a shrunk gy or d is not
    # uniform: a uniform d is invisible to shift-invariant functions such as softmax.
    index = np.arange(array.size, dtype=np.float64).reshape(array.shape)
    return array * (1 + amount * ((index * 0.6180339887498949) % 1))


def upstream_grads(*, shape):
    """Upstream gradients gy of `shape`: never all ones, and never uniform.

    Most elements are +-(1.5 + u) * 2^k with u in [0, 2.5] and k in [-4, 4], so a
    backward that forgets to multiply by gy cannot pass; some are 0 and some have
    magnitudes from 1e-300 to 1e301. Element i is then scaled by 1 + 0.25 frac(i phi).
    Shrinks toward 1.5 (times that factor).
    """
    return _twisted_arrays(tuple(shape), _GY_ELEMENTS, 0.25)


def directions(*, shape):
    """Directions d of `shape`, every element +-[0.5, 1.5] times 1 + 0.5 frac(i phi).

    No element goes unchecked, and d is never uniform. Shrinks toward 0.5 (times
    that factor).
    """
    return _twisted_arrays(tuple(shape), _D_ELEMENTS, 0.5)


@functools.cache
def _twisted_arrays(shape, elements, amount):
    return _arrays(shape, elements).map(lambda a: _twisted(a, amount))


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


def inputs(chain, *, max_dims=4, max_side=8, shape=None):
    """Inputs x on which every Function of `chain` is valid, of a drawn or given `shape`.

    `max_dims` (default 4) and `max_side` (default 8) bound the drawn shape,
    which shrinks toward (); values shrink toward 0 within the domain. Rejects
    the example when the chain is valid at none of its anchors.
    """
    return valid_inputs(chain, max_dims=max_dims, max_side=max_side, shape=shape).map(
        lambda found: found[0]
    )


def valid_inputs(chain, *, max_dims=4, max_side=8, shape=None):
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
