"""Parameters drawn from input shapes: shapes that broadcast, axes, reshape and broadcast
targets, index expressions, kernels with strides and pads, and inputs with ties.

Each strategy takes the shape it works on first and keyword-only bounds, and
shrinks toward the simplest parameter (None, no extra dimensions, stride 1, no pad).
"""

import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from strategies._validate import check_bounds

__all__ = [
    "axes",
    "broadcast_targets",
    "broadcastable_shapes",
    "index_expressions",
    "kernels",
    "reshape_targets",
    "sum_targets",
    "tied_arrays",
]


def _shape(shape):
    shape = tuple(shape)
    if not all(isinstance(s, int | np.integer) and s >= 0 for s in shape):
        raise ValueError(f"shape={shape!r} must be a tuple of non-negative ints")
    return tuple(int(s) for s in shape)


def broadcastable_shapes(*, count, min_dims=0, max_dims=4, max_side=4):
    """Tuples of `count` shapes that broadcast together.

    Bounds: `min_dims` (default 0) to `max_dims` (default 4) dimensions, sides
    1 to `max_side` (default 4), around a drawn shape that they broadcast to;
    shapes differ in length and in sides of 1. Shrinks toward equal 0-d shapes.
    """
    check_bounds(count=count, min_dims=min_dims, max_dims=max_dims, max_side=max_side)
    if count < 1:
        raise ValueError(f"count={count} must be at least 1")
    if max_side < 1:
        raise ValueError(f"max_side={max_side} must be at least 1")
    base = hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side)
    if count == 1:
        return base.map(lambda shape: (shape,))
    # Sides drawn around a full-sized base shape: without one, most sides would be 1.
    return base.flatmap(
        lambda shape: hnp.mutually_broadcastable_shapes(
            num_shapes=count,
            base_shape=shape,
            min_dims=min_dims,
            max_dims=max_dims,
            min_side=1,
            max_side=max_side,
        )
    ).map(lambda found: found.input_shapes)


def axes(shape, *, single=False, allow_none=True):
    """An axis argument for an array of `shape`: None, an int, or a tuple of distinct ints.

    Every axis is drawn in [-ndim, ndim), so negative axes are as common as
    positive ones; tuples are in any order. `single` (default False) draws
    one int only; `allow_none` (default True) allows None. Shrinks toward None,
    then toward axis 0.
    """
    ndim = len(_shape(shape))
    one = (
        st.integers(0, ndim - 1).flatmap(lambda a: st.sampled_from([a, a - ndim])) if ndim else None
    )
    choices = []
    if allow_none:
        choices.append(st.none())
    if one is not None:
        choices.append(one)
        if not single:
            choices.append(
                st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim).flatmap(
                    lambda picked: st.tuples(*[st.sampled_from([a, a - ndim]) for a in picked])
                )
            )
    if not choices:
        raise ValueError(f"shape={shape!r} has no axis, and allow_none=False")
    return st.one_of(*choices)


def reshape_targets(shape, *, max_dims=4, allow_minus_one=True):
    """A shape of `max_dims` (default 4) dimensions or fewer with as many elements as `shape`.

    With `allow_minus_one` (default True), one side may be -1. Shrinks toward the
    one-dimensional shape (size,).
    """
    size = math.prod(_shape(shape))
    check_bounds(max_dims=max_dims)
    if max_dims < 1:
        raise ValueError(f"max_dims={max_dims} must be at least 1")
    return _reshape(size, max_dims, allow_minus_one)


@st.composite
def _reshape(draw, size, max_dims, allow_minus_one):
    sides, left = [], size
    for _ in range(draw(st.integers(0, max_dims - 1))):
        divisors = [d for d in range(1, left + 1) if left % d == 0] if left else [0, 1]
        side = draw(st.sampled_from(divisors))
        sides.append(side)
        left = left // side if side else 0
    sides.append(left)
    order = draw(st.permutations(range(len(sides))))
    target = [sides[i] for i in order]
    if allow_minus_one and size and draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    return tuple(target)


def broadcast_targets(shape, *, max_extra_dims=2, max_side=4):
    """A shape that `shape` broadcasts to: up to `max_extra_dims` (default 2) leading
    dimensions, and sides of 1 grown up to `max_side` (default 4). Shrinks toward `shape`.
    """
    shape = _shape(shape)
    check_bounds(max_extra_dims=max_extra_dims, max_side=max_side)
    if max_side < 1:
        raise ValueError(f"max_side={max_side} must be at least 1")
    side = st.integers(1, max_side)
    lead = st.lists(side, max_size=max_extra_dims)
    grown = st.tuples(*[side if s == 1 else st.just(s) for s in shape])
    return st.tuples(lead, grown).map(lambda t: (*t[0], *t[1]))


def sum_targets(shape):
    """A shape that an array of `shape` sums to (the inverse of broadcasting): leading
    dimensions dropped, others kept or set to 1. Shrinks toward ().
    """
    shape = _shape(shape)
    return (
        st.integers(0, len(shape))
        .flatmap(lambda drop: st.tuples(*[st.sampled_from([1, s]) for s in shape[drop:]]))
        .map(tuple)
    )


def index_expressions(shape, *, max_indices=2):
    """A NumPy index into an array of `shape`: a tuple, one entry per leading axis, of up to
    `max_indices` (default 2) entries, each an int (negative too), a slice (negative
    bounds, reversed steps) or one list of ints (repeated and reversed). Shrinks
    toward one full slice `slice(None, None, None)`.
    """
    shape = _shape(shape)
    check_bounds(max_indices=max_indices)
    if not shape or 0 in shape:
        return st.just(Ellipsis)
    count = st.integers(1, min(max_indices, len(shape)))
    return count.flatmap(lambda n: _index(shape[:n]))


@st.composite
def _index(draw, sides):
    entries, listed = [], False
    for n in sides:
        kinds = ["slice", "int", *([] if listed else ["list"])]
        kind = draw(st.sampled_from(kinds))
        if kind == "int":
            entries.append(draw(st.integers(-n, n - 1)))
        elif kind == "list":
            listed = True
            entries.append(draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=2 * n)))
        else:
            start = draw(st.none() | st.integers(-n, n - 1))
            stop = draw(st.none() | st.integers(-n - 1, n))
            step = draw(st.sampled_from([None, 1, 2, -1, -2]))
            entries.append(slice(start, stop, step))
    return tuple(entries) if len(entries) > 1 else entries[0]


def kernels(height, width, *, max_kernel=3, max_stride=2, max_pad=1):
    """(kernel, stride, pad) pairs (kh, kw), (sh, sw), (ph, pw) for an image of
    `height` x `width`, non-square as often as square, whose output is at least 1x1.

    Bounds: kernel sides 1 to `max_kernel` (default 3), strides 1 to `max_stride`
    (default 2), pads 0 to `max_pad` (default 1). Shrinks toward (1, 1), (1, 1), (0, 0).
    """
    check_bounds(
        height=height, width=width, max_kernel=max_kernel, max_stride=max_stride, max_pad=max_pad
    )
    if min(max_kernel, max_stride) < 1:
        raise ValueError(f"max_kernel={max_kernel} and max_stride={max_stride} must be >= 1")
    pair = lambda low, high: st.tuples(st.integers(low, high), st.integers(low, high))  # noqa: E731
    fits = lambda k: k[0][0] <= height + 2 * k[2][0] and k[0][1] <= width + 2 * k[2][1]  # noqa: E731
    return st.tuples(pair(1, max_kernel), pair(1, max_stride), pair(0, max_pad)).filter(fits)


def tied_arrays(shape, *, distinct=2):
    """Float arrays of `shape` whose elements take at most `distinct` (default 2) values,
    so that maxima and minima are tied. Shrinks toward all zeros.
    """
    shape = _shape(shape)
    check_bounds(distinct=distinct)
    if distinct < 1:
        raise ValueError(f"distinct={distinct} must be at least 1")
    pool = st.lists(st.floats(-4, 4), min_size=1, max_size=distinct, unique=True)
    return pool.flatmap(
        lambda values: hnp.arrays(np.float64, shape, elements=st.sampled_from(values))
    )
