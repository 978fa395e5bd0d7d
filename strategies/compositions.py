"""Compositions of the engine's Square and Exp, as the seed writes them, and inputs
on which they stay finite.

A composition is a tuple of the engine's helpers in the order applied:
`(square, exp, square)` is `square(exp(square(x)))`.
"""

import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from engine import exp, square
from strategies._validate import check_bounds

__all__ = [
    "ANCHORS",
    "HELPERS",
    "MAX_COMPOSITION",
    "compose",
    "composition_inputs",
    "compositions",
    "finite_interval",
    "written",
]

# The longest composition drawn by default: long enough for exp(exp(...)) to overflow.
MAX_COMPOSITION = 6
# In shrink order: compositions simplify toward square.
HELPERS = (square, exp)
_LARGEST = float(np.finfo(np.float64).max)
# The widest margin composition_inputs accepts; drawn compositions leave room for it.
_MAX_MARGIN = 0.1
# Inputs shrink toward the first of these inside the interval, not toward 0: at 0 the
# derivative of square vanishes and hides whatever bug lies behind it.
ANCHORS = (1.0, 0.5, 0.25, -1.0)


def compositions(*, min_length=1, max_length=MAX_COMPOSITION):
    """Compositions of `min_length` (default 1) to `max_length` (default MAX_COMPOSITION = 6)
    of the helpers `square` and `exp`, each with inputs where it stays finite (an
    interval wider than 0.2, so composition_inputs has values at any margin).

    Draw it before the input, so the shrinker removes functions before it simplifies
    numbers: shrinks toward fewer functions, then toward `square`.
    """
    check_bounds(min_length=min_length, max_length=max_length)
    if max_length < 1:
        raise ValueError(f"max_length={max_length} must be at least 1")
    # exp applied 6 times overflows everywhere; such compositions have no input to draw.
    drawn = st.lists(st.sampled_from(HELPERS), min_size=min_length, max_size=max_length)
    return drawn.map(tuple).filter(_has_inputs)


def composition_inputs(composition, *, max_dims=2, max_side=3, max_magnitude=100.0, margin=1e-3):
    """Float64 arrays x on which every intermediate value of `composition` is finite.

    Shapes go from () to `max_dims` (default 2) dims of sides 1..`max_side` (default 3).
    Elements lie in `finite_interval(composition)`, at most `max_magnitude` (default 100,
    at least 1) from 0, and at least `margin` (default 1e-3) inside an overflow edge, so
    that a step of up to `margin` stays finite too. Shrinks toward shape () and toward the
    first of ANCHORS = (1, 0.5, 0.25, -1) in that range (its middle when none is).
    Raises ValueError for an empty or unknown composition, or one with no such input.
    """
    check_bounds(max_dims=max_dims, max_side=max_side)
    if max_side < 1:
        raise ValueError(f"max_side={max_side} must be at least 1")
    if not (isinstance(max_magnitude, (int, float)) and 1 <= max_magnitude < math.inf):
        raise ValueError(f"max_magnitude={max_magnitude!r} must be a finite number >= 1")
    if not (isinstance(margin, (int, float)) and 0 <= margin <= _MAX_MARGIN):
        raise ValueError(f"margin={margin!r} must be a number in [0, {_MAX_MARGIN}]")
    interval = finite_interval(composition)
    if interval is None:
        raise ValueError(f"composition={written(composition)} overflows for every input")
    lo, hi = interval
    lo, hi = max(lo + margin, -max_magnitude), min(hi - margin, max_magnitude)
    if lo > hi:
        raise ValueError(
            f"composition={written(composition)} has no input margin={margin} inside "
            f"its finite interval {interval} and within max_magnitude={max_magnitude}"
        )
    anchor = next((a for a in ANCHORS if lo <= a <= hi), (lo + hi) / 2)
    # Offsets shrink toward 0, so elements shrink toward the anchor; clipped against rounding.
    elements = st.floats(lo - anchor, hi - anchor).map(lambda d: min(max(anchor + d, lo), hi))
    return hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=1, max_side=max_side),
        elements=elements,
    )


def finite_interval(composition):
    """The closed interval (lo, hi) of inputs where every intermediate value of
    `composition` is finite, or None when there is none. Raises ValueError for an
    empty composition or a function other than `square` and `exp`.
    """
    _check(composition)
    # Walk back from the output, which may be any finite float: the preimage of
    # [lo, hi] under square is [-sqrt(hi), sqrt(hi)], and under exp (-inf, log(hi)].
    lo, hi = -_LARGEST, _LARGEST
    for helper in reversed(composition):
        if hi <= 0:
            return None
        if helper is square:
            lo, hi = -math.sqrt(hi), math.sqrt(hi)
        else:
            lo, hi = -math.inf, math.log(hi)
    return lo, hi


def compose(composition):
    """The function Variable -> Variable that applies `composition`'s helpers in order."""
    _check(composition)

    def f(x):
        for helper in composition:
            x = helper(x)
        return x

    return f


def written(composition):
    """`composition` as the seed writes it: (square, exp) -> "exp(square(x))"."""
    _check(composition)
    text = "x"
    for helper in composition:
        text = f"{helper.__name__}({text})"
    return text


def _has_inputs(composition):
    interval = finite_interval(composition)
    return interval is not None and interval[1] - interval[0] > 2 * _MAX_MARGIN


def _check(composition):
    if not isinstance(composition, tuple) or not composition:
        raise ValueError(f"composition={composition!r} must be a non-empty tuple of helpers")
    for helper in composition:
        if helper not in HELPERS:
            raise ValueError(f"composition={composition!r} holds {helper!r}: use square or exp")
