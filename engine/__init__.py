"""The DeZero stage-1 engine (steps 1-10): the code this project fuzzes."""

from engine.core import Function, Variable, as_array
from engine.functions import Exp, Square, exp, square
from engine.numerical import numerical_diff

__all__ = [
    "Exp",
    "Function",
    "Square",
    "Variable",
    "as_array",
    "exp",
    "numerical_diff",
    "square",
]
