"""Function classes and chains: random compositions of registered Functions."""

import functools

from hypothesis import strategies as st

from strategies._validate import check_bounds


def function_classes(*, registry):
    """One registered Spec of `registry`; shrinks toward the first by name."""
    specs = registry.specs()
    if not specs:
        raise ValueError("registry=<empty> has no Function classes; add one with registry.add(cls)")
    return st.sampled_from(specs)


def chains(*, pool, containing=None, min_length=1, max_length=8):
    """Chains: tuples of Specs in the order applied, of `min_length` (default 1) to `max_length`
    (default 8) Functions drawn from `pool`.

    With `containing`, every chain holds that Spec once, with Functions of
    `pool` before and after it. Drawn before anything else in a case, so the
    shrinker removes Functions before it simplifies numbers: a bug local to
    `containing` shrinks to `(containing,)` alone; otherwise chains shrink
    toward fewer Functions and toward the first Spec of `pool`.
    """
    check_bounds(min_length=min_length, max_length=max_length)
    if max_length < 1:
        raise ValueError(f"max_length={max_length} must be at least 1")
    pool = list(pool)
    if containing is None and not pool:
        raise ValueError("pool=[] is empty and containing=None: nothing to chain")
    if containing is None:
        return st.lists(st.sampled_from(pool), min_size=min_length, max_size=max_length).map(tuple)
    if not pool:
        return st.just((containing,))
    # A Spec compares by class and domain, not by factory: the factories are part of the key.
    factories = tuple(id(spec.factory) for spec in (containing, *pool))
    return _around_built(containing, tuple(pool), min_length, max_length, factories)


# The properties ask for the same chains on every example: building the list strategies
# (and Hypothesis validating them) on each draw cost more than the gradient check itself.
# A cached entry keeps its Specs alive, so the ids of their factories stay theirs.
@functools.lru_cache(maxsize=1024)
def _around_built(containing, pool, min_length, max_length, factories):
    others = st.sampled_from(pool)
    # Every list strategy the draw may need, built once: (min_size, max_size) -> strategy.
    lists = {
        (low, high): st.lists(others, min_size=low, max_size=high)
        for high in range(max_length)
        for low in range(high + 1)
    }
    return _around(containing, lists, min_length, max_length)


@st.composite
def _around(draw, containing, lists, min_length, max_length):
    before = draw(lists[0, max_length - 1])
    after_max = max_length - 1 - len(before)
    after_min = min(max(min_length - 1 - len(before), 0), after_max)
    after = draw(lists[after_min, after_max])
    return (*before, containing, *after)
