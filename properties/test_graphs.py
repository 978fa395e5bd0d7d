"""The graph properties: Functions of any adapted engine, with several inputs and drawn parameters.

Each runs once per Function under test that the chain properties cannot take
(`Spec.chainable` is False): a dezero Function, a Function with several inputs,
or one whose factory draws parameters from the input shapes. The DAG property
takes those that keep their input's shape, in an engine with glue Functions.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradfuzz.joint import check_graph_gradient
from strategies.graphs import composable, dag_cases, graph_cases, second_cases


@given(data=st.data())
def test_gradient_of_graphs(gradfuzz_function, gradfuzz, data):
    if gradfuzz_function.chainable:
        pytest.skip("a one-input engine Function: the chain properties judge it")
    case = data.draw(graph_cases(target=gradfuzz_function), label="case")
    gradfuzz.count(case, check_graph_gradient(case))


@given(data=st.data())
def test_gradient_of_dags(gradfuzz_function, gradfuzz, data):
    if not composable(gradfuzz_function):
        pytest.skip("not a node of a DAG: no glue in its engine, or shapes or parameters drawn")
    case = data.draw(dag_cases(target=gradfuzz_function), label="case")
    gradfuzz.count(case, check_graph_gradient(case))


@given(data=st.data())
def test_gradient_of_gradients(gradfuzz_function, gradfuzz, data):
    adapter = gradfuzz_function.adapter
    if gradfuzz_function.chainable or adapter is None or not adapter.higher_order:
        pytest.skip("its engine has no higher-order gradients (create_graph)")
    case = data.draw(second_cases(target=gradfuzz_function), label="case")
    gradfuzz.count(case, check_graph_gradient(case))
