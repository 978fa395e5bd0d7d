"""Hypothesis strategies for Function classes, chains, inputs and upstream gradients."""

from gradfuzz.registry import FunctionRegistry, Spec, default_registry, defined_in
from strategies.arrays import directions, inputs, shapes, upstream_grads, values
from strategies.cases import Case, cases
from strategies.chains import chains, function_classes

__all__ = [
    "Case",
    "FunctionRegistry",
    "Spec",
    "cases",
    "chains",
    "default_registry",
    "defined_in",
    "directions",
    "function_classes",
    "inputs",
    "shapes",
    "upstream_grads",
    "values",
]
