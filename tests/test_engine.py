"""Example-based tests of the engine: the seed notebook's printed numbers and the book's step 10."""

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import Exp, Function, Square, Variable, as_array, exp, numerical_diff, square


def composite(x):
    return square(exp(square(x)))


def test_square_of_10_is_100():
    y = Square()(Variable(np.array(10)))
    assert isinstance(y, Variable)
    assert y.data == 100


def test_composite_forward_matches_the_seed():
    assert composite(Variable(np.array(0.5))).data == 1.648721270700128


def test_numerical_diff_of_square_matches_the_seed():
    assert numerical_diff(Square(), Variable(np.array(2.0))) == 4.000000000004


def test_numerical_diff_of_the_composite_matches_the_seed():
    assert numerical_diff(composite, Variable(np.array(0.5))) == 3.2974426293330694


def test_backprop_by_hand_matches_the_seed():
    A, B, C = Square(), Exp(), Square()
    x = Variable(np.array(0.5))
    a = A(x)
    b = B(a)
    y = C(b)
    y.grad = np.array(1.0)
    b.grad = C.backward(y.grad)
    a.grad = B.backward(b.grad)
    x.grad = A.backward(a.grad)
    assert x.grad == 3.297442541400256


@pytest.mark.parametrize("traversal", ["backward", "backward_recursive"])
def test_both_traversals_match_the_seed(traversal):
    x = Variable(np.array(0.5))
    y = composite(x)
    getattr(y, traversal)()
    assert y.grad == 1.0
    assert x.grad == 3.297442541400256


# The book's step 10 tests.
def test_square_forward():
    assert square(Variable(np.array(2.0))).data == np.array(4.0)


def test_square_backward():
    x = Variable(np.array(3.0))
    square(x).backward()
    assert x.grad == np.array(6.0)


@given(st.floats(0, 1, exclude_max=True))
def test_square_gradient_check(value):
    x = Variable(np.array(value))
    square(x).backward()
    assert np.allclose(x.grad, numerical_diff(square, x))


def test_variable_rejects_what_is_not_an_ndarray():
    with pytest.raises(TypeError, match="<class 'float'> is not supported"):
        Variable(1.0)
    assert Variable(None).data is None


def test_a_function_rejects_what_is_not_a_variable():
    with pytest.raises(TypeError, match=r"<class 'numpy\.ndarray'> is not supported"):
        Square()(np.array(1.0))


def test_the_base_function_has_no_forward_or_backward():
    with pytest.raises(NotImplementedError, match=r"Function.forward"):
        Function()(Variable(np.array(1.0)))
    with pytest.raises(NotImplementedError, match=r"Function.backward"):
        Function().backward(np.array(1.0))


def test_a_function_keeps_its_input_output_and_creator():
    f = Square()
    x = Variable(np.array(3.0))
    y = f(x)
    assert (f.input, f.output, y.creator, x.creator) == (x, y, f, None)


def test_as_array_wraps_scalars_only():
    assert isinstance(as_array(np.float64(2.0)), np.ndarray)
    assert isinstance(as_array(2.0), np.ndarray)
    a = np.array([1.0])
    assert as_array(a) is a


def test_a_numpy_scalar_output_becomes_a_0d_array():
    class Total(Function):
        def forward(self, x):
            return np.sum(x)

    y = Total()(Variable(np.array([1.0, 2.0])))
    assert isinstance(y.data, np.ndarray) and y.data.shape == ()


def test_numerical_diff_works_on_0d_and_elementwise_on_any_shape():
    assert numerical_diff(square, Variable(np.array(2.0))).shape == ()
    x = np.arange(6.0).reshape(2, 3)
    assert np.allclose(numerical_diff(exp, Variable(x)), np.exp(x))


@pytest.mark.parametrize("traversal", ["backward", "backward_recursive"])
def test_backward_on_a_leaf_only_sets_ones(traversal):
    x = Variable(np.array([1.0, 2.0]))
    getattr(x, traversal)()
    assert np.array_equal(x.grad, np.ones(2))


def chain_of_squares(n, value=1.0):
    x = Variable(np.array(value))
    variables = [x]
    for _ in range(n):
        variables.append(square(variables[-1]))
    return variables


def test_the_loop_handles_a_chain_100000_functions_deep():
    variables = chain_of_squares(100_000)
    with np.errstate(over="ignore"):  # 2^k overflows to inf past k = 1023, as it should
        variables[-1].backward()
    # d(x^(2^k))/dx at 1 is 2^k: exact until it overflows to inf.
    for k in range(1, 1000):
        assert variables[-1 - k].grad == 2.0**k
    assert variables[0].grad == np.inf


def test_the_recursion_past_the_limit_raises_a_recursion_error_naming_backward():
    n = sys.getrecursionlimit() + 10
    variables = chain_of_squares(n)
    with pytest.raises(
        RecursionError, match=r"too deep for the recursive traversal.*backward\(\)"
    ) as excinfo:
        variables[-1].backward_recursive()
    assert f"the chain is {n} functions deep" in str(excinfo.value)
    assert all(v.grad is None for v in variables[:-1])  # raised before any gradient was set
    variables[-1].backward()
    assert variables[0].grad == 2.0**n


@settings(max_examples=12)
@given(offset=st.integers(-150, 150))
def test_near_the_limit_the_traversals_agree_or_the_recursion_says_why(offset):
    n = sys.getrecursionlimit() + offset
    loop, recursive = chain_of_squares(n, 0.99), chain_of_squares(n, 0.99)
    loop[-1].backward()
    try:
        recursive[-1].backward_recursive()
    except RecursionError as e:
        assert f"the chain is {n} functions deep" in str(e) and "use backward()" in str(e)
        assert all(v.grad is None for v in recursive[:-1])
        return
    assert n < sys.getrecursionlimit()
    assert loop[0].grad.tobytes() == recursive[0].grad.tobytes()


def test_a_higher_recursion_limit_lets_the_recursion_go_deeper():
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(old + 6000)
    try:
        variables = chain_of_squares(old + 1000, 0.5)
        variables[-1].backward_recursive()
        assert variables[1].grad is not None
    finally:
        sys.setrecursionlimit(old)


def test_when_the_frames_run_out_anyway_the_recursion_rolls_back_and_says_why(monkeypatch):
    import engine.core

    # A pre-check that counts too few frames, as under a tracer that adds its own.
    monkeypatch.setattr(engine.core, "_RECURSION_MARGIN", -10 * sys.getrecursionlimit())
    n = sys.getrecursionlimit() + 10
    variables = chain_of_squares(n)
    with pytest.raises(RecursionError, match=f"the chain is {n} functions deep") as excinfo:
        variables[-1].backward_recursive()
    assert isinstance(excinfo.value.__cause__, RecursionError)
    assert all(v.grad is None for v in variables[:-1])
