"""The properties every registered Function must satisfy, alone and in random chains.

Each test runs once per registered Function (`test_gradient[Exp]`), so one
broken Function cannot hide another; chains mix it with the engine's own.
"""

from hypothesis import given
from hypothesis import strategies as st

from properties.checks import check_gradient, check_invariants, check_traversals
from strategies import cases

MAX_CHAIN = 6


@given(data=st.data())
def test_gradient(spec, harness, data):
    case = data.draw(cases(target=spec), label="case")
    check_gradient(case)
    harness.count(case)


@given(data=st.data())
def test_gradient_of_chains(spec, harness, data):
    case = data.draw(cases(target=spec, pool=harness.pool, max_length=MAX_CHAIN), label="case")
    check_gradient(case)
    harness.count(case)


@given(data=st.data())
def test_traversals_agree(spec, harness, data):
    case = data.draw(cases(target=spec, pool=harness.pool, max_length=MAX_CHAIN), label="case")
    check_traversals(case)
    harness.count(case)


@given(data=st.data())
def test_invariants_hold(spec, harness, data):
    case = data.draw(cases(target=spec, pool=harness.pool, max_length=MAX_CHAIN), label="case")
    check_invariants(case)
    harness.count(case)
