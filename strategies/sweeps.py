"""Sweeps: one input that holds every binade of the documented range, for one Function."""

import numpy as np
from hypothesis import strategies as st

from gradfuzz.sweep import valid_part
from strategies.arrays import MAX_BINADE, NOTABLE
from strategies.cases import Case

# The binades -DENSE..DENSE, where most bugs live, get this many more elements each.
DENSE = 20
EXTRA_PER_DENSE_BINADE = 15
_PHI = 0.6180339887498949
_SQRT2 = 1.4142135623730951


def sweep_values(offset):
    """Every binade of +-[2^-MAX_BINADE, 2^MAX_BINADE] once, the binades -DENSE..DENSE
    EXTRA_PER_DENSE_BINADE times more, 0 and the notable points; ascending.

    The mantissa of the k-th element is 1 + frac(offset + k phi): each drawn offset
    puts every binade's element somewhere else.
    """
    exponents = np.concatenate(
        [np.arange(-MAX_BINADE, MAX_BINADE + 1), np.repeat(np.arange(-DENSE, DENSE + 1),
                                                            EXTRA_PER_DENSE_BINADE)]
    )  # fmt: skip
    mantissas = 1 + (offset + _PHI * np.arange(exponents.size)) % 1
    magnitudes = np.ldexp(mantissas, exponents)
    values = np.concatenate([magnitudes, -magnitudes, [0.0], NOTABLE])
    return np.unique(values)


def sweep_offset(number):
    """The mantissa offset of sweep `number`: n sqrt(2) mod 1, evenly spread over [0, 1)
    even for the small n a shrinker likes, and never a shift of another sweep's grid
    (whose mantissas step by phi)."""
    return (number * _SQRT2) % 1


def sweeps(*, target):
    """Cases for the Spec `target` alone whose x is the valid part of a sweep (see
    `sweep_values`), with an upstream gradient of +-(1.5 + u) 2^k, u in [0, 2.5] and
    k in [-4, 4], per element. Draws the sweep number n (see `sweep_offset`)
    and the upstream gradient's seed; both shrink toward 0. Draws None where the Function is not
    elementwise or valid nowhere on the sweep: a sweep says nothing about it.
    """
    return _sweeps(target)


@st.composite
def _sweeps(draw, target):
    offset = sweep_offset(draw(st.integers(0, 2**16), label="sweep number"))
    seed = draw(st.integers(0, 2**32 - 1), label="upstream gradient seed")
    found = valid_part((target,), sweep_values(offset))
    if found is None:
        return None
    x, graph = found
    rng = np.random.default_rng(seed)
    gy = rng.choice([-1.0, 1.0], x.size) * (1.5 + 2.5 * rng.random(x.size)) * np.ldexp(
        1.0, rng.integers(-4, 5, x.size)
    )
    return Case(target.name, (target,), x, gy, np.ones_like(x), [graph])
