"""The numerical_diff property can fail: run on an engine whose Square or Exp backward
is wrong, it fails and shrinks to the shortest composition that shows the bug.

Each test copies properties/test_numerical_diff.py into a throwaway directory whose
conftest.py swaps in a wrong backward, and runs it in a subprocess under the ci profile.
"""

from pathlib import Path

PROPERTY = Path(__file__).resolve().parents[1] / "properties" / "test_numerical_diff.py"

WRONG_BACKWARD = """
import numpy as np
import pytest

from engine import Exp, Square


@pytest.fixture(autouse=True)
def wrong_backward(monkeypatch):
    def backward(self, gy):
        x = self.input.data
        return {body}

    monkeypatch.setattr({cls}, "backward", backward)
"""


def run_property(pytester, cls=None, body=None):
    if cls is not None:
        pytester.makeconftest(WRONG_BACKWARD.format(cls=cls, body=body))
    pytester.makepyfile(test_property=PROPERTY.read_text())
    return pytester.runpytest_subprocess("-p", "no:xdist", "--hypothesis-profile=ci")


def assert_fails_on(result, name):
    result.assert_outcomes(failed=1)
    # Hypothesis reports only the shrunk example; inputs shrink toward 1.0, a 0-d array.
    result.stdout.fnmatch_lines(
        [f"E * for f(x) = {name}", "E * x * = 0x1.0000000000000p+0 (shape ())"]
    )
    assert result.stdout.str().count("for f(x) = ") == 1


def test_it_passes_the_engine_as_written(pytester):
    run_property(pytester).assert_outcomes(passed=1)


# backward() seeds gy with ones, so a forgotten gy hides in the last Function: the bug
# needs a second Function after Square, and square(square(x)) is the simplest.
def test_it_fails_on_a_square_that_forgets_gy_and_shrinks_to_two_functions(pytester):
    result = run_property(pytester, "Square", "2 * x")
    assert_fails_on(result, "square(square(x))")


def test_it_fails_on_a_square_without_its_factor_2_and_shrinks_to_square_alone(pytester):
    result = run_property(pytester, "Square", "x * gy")
    assert_fails_on(result, "square(x)")


# As for Square, Exp's forgotten gy needs a Function after it.
def test_it_fails_on_an_exp_that_forgets_gy_and_shrinks_to_square_of_exp(pytester):
    result = run_property(pytester, "Exp", "np.exp(x)")
    assert_fails_on(result, "square(exp(x))")


def test_it_fails_on_an_exp_of_its_output_and_shrinks_to_exp_alone(pytester):
    result = run_property(pytester, "Exp", "np.exp(self.output.data) * gy")
    assert_fails_on(result, "exp(x)")
