"""One forward pass of a chain (gradfuzz.graph.build): what it guards, and what it blames."""

import numpy as np
import pytest

from engine import Function, Square
from gradfuzz.findings import Finding, Kind
from gradfuzz.graph import build
from strategies import FunctionRegistry


def _spec(cls, factory=None):
    return FunctionRegistry().add(cls, factory=factory)


class _Identity(Function):
    def forward(self, x):
        return x * 1.0

    def backward(self, gy):
        return gy


def test_a_plain_function_class_is_built_without_running_user_code():
    assert _spec(Square).built_without_user_code
    assert _spec(_Identity).built_without_user_code


def test_a_constructor_of_its_own_is_user_code_and_its_failure_is_a_finding():
    class RaisesWhenBuilt(_Identity):
        def __init__(self):
            raise RuntimeError("no")

    spec = _spec(RaisesWhenBuilt)
    assert not spec.built_without_user_code
    with pytest.raises(Finding) as caught:
        build((spec,), np.array([0.5]))
    assert caught.value.kind == Kind.CANNOT_BUILD
    assert caught.value.function.endswith("RaisesWhenBuilt")


def test_a_factory_a_new_method_or_a_metaclass_is_user_code():
    class New(_Identity):
        def __new__(cls):
            return super().__new__(cls)

    class Meta(type(Function)):
        pass

    class WithMeta(_Identity, metaclass=Meta):
        pass

    assert not _spec(_Identity, factory=lambda: _Identity()).built_without_user_code
    assert not _spec(New).built_without_user_code
    assert not _spec(WithMeta).built_without_user_code


def test_a_forward_that_changes_an_earlier_variable_is_blamed_for_it():
    class ZeroesItsInput(_Identity):
        def forward(self, x):
            x[...] = 0.0  # the output of the stage before, made two calls ago
            return x * 1.0

    chain = (_spec(Square), _spec(_Identity), _spec(ZeroesItsInput))
    with pytest.raises(Finding) as caught:
        build(chain, np.array([0.5, 2.0]))
    assert caught.value.kind == Kind.INPUT_MUTATED
    assert caught.value.function.endswith("ZeroesItsInput")


def test_a_forward_that_silences_numpy_does_not_silence_the_next_stage():
    class IgnoresErrors(_Identity):
        def forward(self, x):
            np.seterr(all="ignore")
            return x * 1.0

    class Overflows(_Identity):
        def forward(self, x):
            return 1.0 / np.exp(x)  # finite, but exp overflowed on the way

    with np.errstate():  # whatever IgnoresErrors leaves behind stays in this test
        graph = build((_spec(IgnoresErrors), _spec(Overflows)), np.array([1000.0]))
    assert np.isfinite(graph.y.data).all()
    assert graph.warned
