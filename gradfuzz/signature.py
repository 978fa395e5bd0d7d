"""What a Function declares about its inputs: how many, which are integer or constant, ndim.

A Function declares it in a class attribute `fuzz_spec = {...}`, or its module
lists it in `FUZZ_SPEC = {Class: {...}}` (which wins). Every key is optional:

- `inputs`: how many inputs forward takes (default: forward's positional parameters);
- `shapes`: `lambda draw: (shape0, shape1, ...)`, one shape per input, drawn with
  Hypothesis's `draw` (default: broadcast-compatible shapes);
- `integer`: `{index: lambda shapes: (low, high)}`, inputs of integers drawn in
  [low, high) (class labels); never differentiated;
- `constant`: indices of float inputs that are never differentiated;
- `min_ndim`: the smallest number of dimensions of a drawn shape (default 0);
- `max_ndim`: the largest (default 4);
- `build`: `lambda draw: (function, shapes)`, for a Function whose constructor
  arguments and input shapes must be drawn together; it replaces both the
  factory and `shapes`;
- `dtype`: the float dtype of its float inputs and upstream gradients,
  `np.float64` (default) or `np.float32`; backward's rounding is then allowed
  for in that dtype's epsilon.
"""

import inspect
from dataclasses import dataclass, field

import numpy as np

SPEC_NAME = "FUZZ_SPEC"
KEYS = ("inputs", "shapes", "integer", "constant", "min_ndim", "max_ndim", "build", "dtype")
DTYPES = (np.float64, np.float32)


@dataclass(frozen=True)
class Signature:
    """A Function's inputs as the graph properties draw them."""

    inputs: int = 1
    shapes: object = field(default=None, compare=False)
    integer: dict = field(default_factory=dict, compare=False)
    constant: frozenset = frozenset()
    min_ndim: int = 0
    max_ndim: int = 4
    build: object = field(default=None, compare=False)
    dtype: type = np.float64

    def differentiated(self):
        """The indices of the inputs whose gradients are checked."""
        return [i for i in range(self.inputs) if i not in self.integer and i not in self.constant]


def signature(cls, declared=None):
    """The Signature of `cls` from `declared` (a FUZZ_SPEC entry) or `cls.fuzz_spec`.

    Raises ValueError naming the key and value that are wrong.
    """
    spec = declared if declared is not None else getattr(cls, "fuzz_spec", None) or {}
    name = cls.__qualname__
    if not isinstance(spec, dict):
        raise ValueError(f"the fuzz spec of {name} is {type(spec).__name__}; it must be a dict")
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise ValueError(f"the fuzz spec of {name} has unknown keys {unknown}; known: {KEYS}")
    inputs = spec.get("inputs", _positional(cls.forward))
    if not isinstance(inputs, int) or isinstance(inputs, bool) or inputs < 1:
        raise ValueError(f"the fuzz spec of {name}: inputs={inputs!r} must be an int >= 1")
    integer = spec.get("integer", {})
    if not isinstance(integer, dict) or not all(callable(v) for v in integer.values()):
        raise ValueError(
            f"the fuzz spec of {name}: integer={integer!r} must map input indices to "
            "lambda shapes: (low, high)"
        )
    constant = frozenset(spec.get("constant", ()))
    for index in [*integer, *constant]:
        if not isinstance(index, int) or not 0 <= index < inputs:
            raise ValueError(
                f"the fuzz spec of {name}: input index {index!r} is not in 0..{inputs - 1}"
            )
    bounds = {k: spec.get(k, d) for k, d in (("min_ndim", 0), ("max_ndim", 4))}
    for key, value in bounds.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"the fuzz spec of {name}: {key}={value!r} must be an int >= 0")
    if bounds["min_ndim"] > bounds["max_ndim"]:
        raise ValueError(
            f"the fuzz spec of {name}: min_ndim={bounds['min_ndim']} is larger than "
            f"max_ndim={bounds['max_ndim']}"
        )
    shapes, build = spec.get("shapes"), spec.get("build")
    if shapes is not None and not callable(shapes):
        raise ValueError(f"the fuzz spec of {name}: shapes={shapes!r} must be lambda draw: shapes")
    if build is not None and not callable(build):
        raise ValueError(
            f"the fuzz spec of {name}: build={build!r} must be lambda draw: (function, shapes)"
        )
    try:
        dtype = np.dtype(spec.get("dtype", np.float64)).type
    except TypeError:
        dtype = None
    if dtype not in DTYPES:
        raise ValueError(
            f"the fuzz spec of {name}: dtype={spec['dtype']!r} must be np.float64 or np.float32"
        )
    if len(set(integer) | constant) == inputs:
        raise ValueError(f"the fuzz spec of {name}: no input is left to differentiate")
    return Signature(inputs, shapes, dict(integer), constant, **bounds, build=build, dtype=dtype)


def _positional(forward):
    """forward's positional parameters after self; 1 when it takes *args."""
    try:
        parameters = list(inspect.signature(forward).parameters.values())[1:]
    except (TypeError, ValueError):
        return 1
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return 1
    return max(1, sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters))


def factory_takes_shapes(factory):
    """True for a factory `lambda draw, shapes: ...`, False for a zero-argument one."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    required = [p for p in parameters if p.default is p.empty and p.kind != p.VAR_KEYWORD]
    return len(required) == 2
