"""The oracle's honesty: it never looks at backward, and it knows when it cannot judge."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import UnsatisfiedAssumption

import examples.correct as correct
from engine import Exp, Function, Square
from gradfuzz import oracle, strict
from gradfuzz.checks import NO_DIGIT, check_gradient
from gradfuzz.findings import Finding
from gradfuzz.registry import FunctionRegistry
from strategies import Case, cases, default_registry

ENGINE = default_registry().specs()


def spec_of(cls):
    return FunctionRegistry([cls]).specs()[0]


def scaled(cls, factor):
    """`cls` with a backward that returns `factor` times the right gradient."""

    def backward(self, gy):
        return cls.backward(self, gy) * factor

    return type(f"{cls.__name__}Times{factor:g}", (cls,), {"backward": backward})


def outcome(case):
    """("pass", None), ("reject", reason) or ("fail", kind) for one gradient check."""
    try:
        check_gradient(case)
    except UnsatisfiedAssumption as e:
        return "reject", str(e)
    except Finding as f:
        return "fail", f.kind
    return "pass", None


def drawn_cases(cls, *, examples=40):
    spec, drawn = spec_of(cls), []

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None)
    @given(st.data())
    def collect(data):
        drawn.append(data.draw(cases(target=spec, pool=ENGINE, max_length=3)))

    collect()
    return drawn


# The rejections reached only after a mismatch, and so through backward: a mismatch
# that no part of the array reproduces, backward's own arithmetic underflowing, and
# backward's rounding leaving no digit in float64 or in long double.
AFTER_A_MISMATCH = {
    "a mismatch that no part of the array reproduces",
    "backward underflows in float64 here",
    NO_DIGIT,
}


def with_target(case, cls):
    """The same case with the Function under test replaced by `cls`."""
    spec = spec_of(cls)
    chain = tuple(spec if s.name == case.target else s for s in case.chain)
    return Case(spec.name, chain, case.x, case.gy, case.d)


# Kinks, domains, functions that are not elementwise, saturation and oscillation.
SUBJECTS = [
    correct.Abs, correct.Relu, correct.HardTanh, correct.Log, correct.Sqrt,
    correct.Softmax, correct.Cumsum, correct.Tanh, correct.Sigmoid, correct.Sin,
]  # fmt: skip


@pytest.mark.parametrize("cls", SUBJECTS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("factor", [2.0, 0.0])
def test_a_wrong_backward_is_never_set_aside_where_the_right_one_is_judged(cls, factor):
    wrong = scaled(cls, factor)
    judged = 0
    for case in drawn_cases(cls):
        right, bad = outcome(with_target(case, cls)), outcome(with_target(case, wrong))
        assert right[0] != "fail", f"{cls.__name__} is correct but failed: {right}"
        if bad[0] == "reject" and bad[1] not in AFTER_A_MISMATCH:
            # The oracle's reasons come from forward alone: the same for both backwards.
            assert right == bad, (case, right, bad)
        if right[0] == "reject":
            assert bad in (right, ("fail", "gradient_mismatch")), (case, right, bad)
        judged += right[0] == "pass"
    # HardTanh is flat outside [-1, 1], where most drawn values lie: 4 of 40 is its share.
    assert judged >= 4, f"only {judged} of 40 examples of {cls.__name__} could be judged"


def test_the_oracle_takes_no_gradient():
    # A verifier never grades itself: nothing in the oracle's signature can carry g.
    probe = oracle.Probe((spec_of(correct.Sin),), np.array(0.5), np.array(1.0), np.array(1.5))
    found = oracle.estimate(probe)
    assert isinstance(found, oracle.Estimate)
    assert found.value == pytest.approx(1.5 * np.cos(0.5), rel=1e-9)


class StableSigmoid(Function):
    """Correct, but np.abs makes it non-analytic: a complex step must not be trusted."""

    def forward(self, x):
        z = np.exp(-np.abs(x))
        return np.where(np.real(x) >= 0, 1 / (1 + z), z / (1 + z))

    def backward(self, gy):
        y = self.output.data
        return y * (1 - y) * gy


def test_a_complex_step_through_non_analytic_code_is_not_trusted():
    spec = spec_of(StableSigmoid)
    probe = oracle.Probe((spec,), np.array([0.3, -2.0]), np.array([1.0, 0.7]), np.array([1.5, 2]))
    cheap = oracle.estimate(probe)
    assert strict.complex_estimate(probe, cheap, depth=1) is None


def test_complex_log1p_that_loses_digits_is_not_trusted_but_real_log1p_judges():
    chain = (ENGINE[1], spec_of(correct.Log1p), ENGINE[1])  # Square -> Log1p -> Square
    x = np.array(float.fromhex("0x1.e9234d92f292dp-10"))
    probe = oracle.Probe(chain, x, np.array(1.0), np.array(1.5))
    assert strict.complex_estimate(probe, oracle.estimate(probe), depth=3) is None
    case = Case("Log1p", chain, x, np.array(1.5), np.array(1.0))
    assert outcome(case)[0] == "pass"


def test_a_wrong_element_is_localized_and_named():
    class SinWrongAtThree(Function):
        def forward(self, x):
            return np.sin(x)

        def backward(self, gy):
            g = np.cos(self.input.data) * gy
            g.flat[3] *= 1.001
            return g

    spec = spec_of(SinWrongAtThree)
    x = np.linspace(0.1, 0.8, 8).reshape(2, 4)
    case = Case(spec.name, (spec,), x, np.full(x.shape, 1.5), np.full(x.shape, 0.75))
    with pytest.raises(Finding) as found:
        check_gradient(case)
    assert found.value.numbers["elements"] == [[0, 3]]


def test_a_huge_input_is_judged_with_a_step_relative_to_it():
    class SquareWrongAbove1e150(Function):
        def forward(self, x):
            return x * x

        def backward(self, gy):
            x = self.input.data
            return np.where(np.abs(x) > 1e150, 3 * x, 2 * x) * gy

    spec = spec_of(SquareWrongAbove1e150)
    x = np.array(1e152)
    case = Case(spec.name, (spec,), x, np.array(1e-150), np.array(1.0))
    assert outcome(case) == ("fail", "gradient_mismatch")
    right = Case("Square", (ENGINE[1],), x, np.array(1e-150), np.array(1.0))
    assert outcome(right)[0] == "pass"


def test_a_kink_at_an_element_next_to_large_ones_is_set_aside():
    chain = (ENGINE[0], ENGINE[0], spec_of(correct.Relu))  # Exp -> Exp -> Relu: no kink
    case = Case("Relu", chain, np.array([0.0, 0.5]), np.array([1.5, 2.0]), np.array([1.0, 0.7]))
    assert outcome(case)[0] == "pass"
    kinked = Case(
        "Relu", (spec_of(correct.Relu), ENGINE[0], ENGINE[0]), np.array([0.0, 0.0, 0.0, 0.5]),
        np.array([1.5, 2.0, 1.7, 1.9]), np.array([1.0, 0.7, 0.6, 1.2]),
    )  # fmt: skip
    assert outcome(kinked) == ("reject", "kink")


def test_an_injected_error_of_1e_8_survives_the_long_double_rerun():
    wrong = spec_of(scaled(correct.Tanh, 1 + 1e-8))
    case = Case(wrong.name, (wrong,), np.array(0.7), np.array(1.5), np.array(1.0))
    assert outcome(case) == ("fail", "gradient_mismatch")


def test_exp_and_square_stay_honest_on_their_own():
    for spec in (Exp, Square):
        for case in drawn_cases(spec, examples=20):
            assert outcome(case)[0] != "fail"


ESCAPES_AT_THEIR_INPUTS = {
    "AsinhSquareOverflow": ([1e155], "gradient_mismatch"),
    "ExpShiftedOverflow": ([690.0], "nonfinite_gradient"),
    "TanhCutoff": ([13.5], "gradient_mismatch"),
    "TanhFloat32FastPath": ([1.0] * 65, "gradient_mismatch"),
}


@pytest.mark.parametrize("name", sorted(ESCAPES_AT_THEIR_INPUTS))
def test_the_escapes_that_ci_may_not_draw_fail_at_their_inputs(name):
    import examples.escapes as escapes

    values, kind = ESCAPES_AT_THEIR_INPUTS[name]
    spec = spec_of(getattr(escapes, name))
    x = np.array(values)
    case = Case(spec.name, (spec,), x, np.full(x.shape, 1.5), np.linspace(0.6, 1.3, x.size))
    assert outcome(case) == ("fail", kind)


def test_a_findings_q_gives_back_its_analytic():
    # Found from outside: the recorded direction alone did not give the reported <g, q>,
    # which is taken along the direction times its step scale.
    wrong = scaled(correct.Sin, 2.0)
    spec = spec_of(wrong)
    case = Case(spec.name, (spec,), np.array([3.5, -0.25]), np.array([0.5, 2.0]), np.ones(2))
    with pytest.raises(Finding) as found:
        check_gradient(case)
    numbers = found.value.numbers
    g = 2.0 * np.cos(case.x) * case.gy
    assert np.sum(g * numbers["q"]) == pytest.approx(numbers["analytic"], rel=1e-12)
    assert not np.array_equal(numbers["q"], numbers["direction"])
