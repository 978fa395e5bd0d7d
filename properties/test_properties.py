"""The properties every Function under test must satisfy, alone and in random chains.

Each test runs once per Function under test (`test_gradient[Exp]`), so one
broken Function cannot hide another; chains mix it with the engine's own. The
gradfuzz plugin parametrizes `gradfuzz_function` and provides `gradfuzz`, the
session that counts the examples.
"""

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from gradfuzz.checks import check_gradient, check_invariants, check_traversals
from gradfuzz.sweep import check_sweep
from strategies import cases
from strategies.sweeps import sweeps

MAX_CHAIN = 6


def _chainable(spec):
    """Skip a Function that only the graph properties (test_graphs.py) can take."""
    if not spec.chainable:
        pytest.skip("not a one-input engine Function: the graph properties judge it")


@given(data=st.data())
def test_gradient(gradfuzz_function, gradfuzz, data):
    _chainable(gradfuzz_function)
    case = data.draw(cases(target=gradfuzz_function), label="case")
    gradfuzz.count(case, check_gradient(case, strict=gradfuzz.strict))


@given(data=st.data())
def test_gradient_of_chains(gradfuzz_function, gradfuzz, data):
    _chainable(gradfuzz_function)
    case = data.draw(
        cases(target=gradfuzz_function, pool=gradfuzz.pool, max_length=MAX_CHAIN), label="case"
    )
    gradfuzz.count(case, check_gradient(case, strict=gradfuzz.strict))


@given(data=st.data())
def test_traversals_agree(gradfuzz_function, gradfuzz, data):
    _chainable(gradfuzz_function)
    case = data.draw(
        cases(target=gradfuzz_function, pool=gradfuzz.pool, max_length=MAX_CHAIN), label="case"
    )
    check_traversals(case)
    gradfuzz.count(case)


@given(data=st.data())
def test_invariants_hold(gradfuzz_function, gradfuzz, data):
    _chainable(gradfuzz_function)
    case = data.draw(
        cases(target=gradfuzz_function, pool=gradfuzz.pool, max_length=MAX_CHAIN), label="case"
    )
    check_invariants(case)
    gradfuzz.count(case)


# A sweep holds every binade at once, so a quarter of the profile's examples; and no
# shrinking: its Finding already names the smallest input that fails (read when the
# module is imported, after the runner loaded the profile).
_SWEEPS = settings(
    max_examples=max(1, settings.default.max_examples // 4),
    phases=[phase for phase in settings.default.phases if phase != Phase.shrink],
)


@_SWEEPS
@given(data=st.data())
def test_gradient_across_binades(gradfuzz_function, gradfuzz, data):
    _chainable(gradfuzz_function)
    case = data.draw(sweeps(target=gradfuzz_function), label="sweep")
    if case is None:
        return  # not elementwise: the other properties judge it
    for judged, verdict in check_sweep(case, strict=gradfuzz.strict):
        gradfuzz.count(judged, verdict)  # a note names the element judged, not the sweep
