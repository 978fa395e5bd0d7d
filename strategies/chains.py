"""Function classes and chains: random compositions of registered Functions."""

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
    return _chains(pool, containing, min_length, max_length)


@st.composite
def _chains(draw, pool, containing, min_length, max_length):
    if containing is None:
        return tuple(
            draw(st.lists(st.sampled_from(pool), min_size=min_length, max_size=max_length))
        )
    if not pool:
        return (containing,)
    others = st.sampled_from(pool)
    before = draw(st.lists(others, max_size=max_length - 1))
    after = draw(st.lists(others, max_size=max_length - 1 - len(before)))
    chain = (*before, containing, *after)
    if len(chain) < min_length:
        chain = chain + tuple(
            draw(
                st.lists(others, min_size=min_length - len(chain), max_size=min_length - len(chain))
            )
        )
    return chain
