"""The parameter strategies: every drawn parameter is valid for the shape it was drawn for."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from strategies.params import (
    axes,
    broadcast_targets,
    index_expressions,
    kernels,
    reshape_targets,
    sum_targets,
    tied_arrays,
)

shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4)


@given(st.data(), shapes)
def test_axes_are_valid_for_numpy_and_cover_negative_ones(data, shape):
    axis = data.draw(axes(shape))
    np.zeros(shape).sum(axis=axis)  # raises on an invalid or repeated axis


@given(st.data(), hnp.array_shapes(min_dims=1, max_dims=4, max_side=4))
def test_a_single_axis_is_one_int_in_range(data, shape):
    axis = data.draw(axes(shape, single=True, allow_none=False))
    assert isinstance(axis, int) and -len(shape) <= axis < len(shape)


@given(st.data(), shapes)
def test_reshape_targets_keep_the_size(data, shape):
    target = data.draw(reshape_targets(shape))
    assert np.zeros(shape).reshape(target).size == math.prod(shape)


@given(st.data(), shapes)
def test_an_array_broadcasts_to_its_broadcast_target_and_sums_to_its_sum_target(data, shape):
    np.broadcast_to(np.zeros(shape), data.draw(broadcast_targets(shape)))
    np.broadcast_to(np.zeros(data.draw(sum_targets(shape))), shape)


@given(st.data(), hnp.array_shapes(min_dims=1, max_dims=3, max_side=4))
def test_index_expressions_index_the_array(data, shape):
    np.zeros(shape)[data.draw(index_expressions(shape))]


@given(st.data(), st.integers(1, 5), st.integers(1, 5))
def test_kernels_leave_an_output_of_at_least_one_pixel(data, height, width):
    (kh, kw), (sh, sw), (ph, pw) = data.draw(kernels(height, width))
    assert (height + 2 * ph - kh) // sh + 1 >= 1 and (width + 2 * pw - kw) // sw + 1 >= 1


@given(st.data(), shapes)
def test_tied_arrays_take_at_most_distinct_values(data, shape):
    assert len(np.unique(data.draw(tied_arrays(shape, distinct=2)))) <= 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: axes((), allow_none=False), "has no axis"),
        (lambda: reshape_targets((2,), max_dims=0), "max_dims=0 must be at least 1"),
        (lambda: kernels(3, 3, max_kernel=0), "max_kernel=0"),
        (lambda: tied_arrays((2,), distinct=0), "distinct=0 must be at least 1"),
        (lambda: axes((-1,)), "shape=\\(-1,\\) must be a tuple of non-negative ints"),
    ],
)
def test_a_bad_bound_is_an_error_that_names_it(call, message):
    with pytest.raises(ValueError, match=message):
        call()
