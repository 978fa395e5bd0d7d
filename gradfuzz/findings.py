"""Findings: structured exceptions that the checks raise and the report serialises."""

import math
from enum import StrEnum

import numpy as np


class Kind(StrEnum):
    """Every kind of finding; a StrEnum, so reports hold the plain string."""

    GRADIENT_MISMATCH = "gradient_mismatch"
    NONFINITE_GRADIENT = "nonfinite_gradient"
    FORWARD_RAISED = "forward_raised"
    BACKWARD_RAISED = "backward_raised"
    INVALID_RETURN = "invalid_return"
    WRONG_SHAPE = "wrong_shape"
    WRONG_DTYPE = "wrong_dtype"
    INPUT_MUTATED = "input_mutated"
    OUTPUT_MUTATED = "output_mutated"
    GY_MUTATED = "gy_mutated"
    NONDETERMINISTIC = "nondeterministic"
    TRAVERSAL_MISMATCH = "traversal_mismatch"
    RECURSION = "recursion"
    TIMEOUT = "timeout"
    EXITED = "exited"
    CRASHED = "crashed"
    INTERRUPTED = "interrupted"
    LEAKED_THREAD = "leaked_thread"
    CANNOT_BUILD = "cannot_build"
    NO_VALID_INPUT = "no_valid_input"
    HARNESS_ERROR = "harness_error"
    STATEFUL_BACKWARD = "stateful_backward"
    IMPRECISE_GRADIENT = "imprecise_gradient"


# The one line a report prints for each kind.
KINDS = {
    Kind.GRADIENT_MISMATCH: "backward's gradient disagrees with the numerical derivative "
    "by more than the oracle's own error",
    Kind.NONFINITE_GRADIENT: "backward returned inf or nan where forward is finite",
    Kind.FORWARD_RAISED: "forward raised an exception",
    Kind.BACKWARD_RAISED: "backward raised an exception",
    Kind.INVALID_RETURN: "forward or backward returned something that is not a numeric "
    "ndarray of the right shape",
    Kind.WRONG_SHAPE: "the gradient's shape differs from its input's shape",
    Kind.WRONG_DTYPE: "the gradient's dtype is not floating",
    Kind.INPUT_MUTATED: "the call changed its input's data in place",
    Kind.OUTPUT_MUTATED: "backward changed its output's data (or a later Variable's) in place",
    Kind.GY_MUTATED: "backward changed the upstream gradient gy in place",
    Kind.NONDETERMINISTIC: "two backward passes over fresh graphs of the same chain differ",
    Kind.TRAVERSAL_MISMATCH: "backward() and backward_recursive() give different gradients",
    Kind.RECURSION: "backward_recursive() failed in a way other than the documented RecursionError",
    Kind.TIMEOUT: "a call did not return within --fuzz-timeout, or a whole test outlived "
    "the hard per-test limit and its worker was killed",
    Kind.EXITED: "the Function ended its process: sys.exit, os._exit or the like",
    Kind.CRASHED: "the process running the Function died from a signal (segfault, abort, kill)",
    Kind.INTERRUPTED: "the Function raised KeyboardInterrupt itself, with no Ctrl-C pressed",
    Kind.LEAKED_THREAD: "the Function started a thread that was still running after its test",
    Kind.CANNOT_BUILD: "the harness cannot construct the Function with no arguments",
    Kind.NO_VALID_INPUT: "no input was found on which forward returns finite values",
    Kind.HARNESS_ERROR: "the harness itself failed on this function; please report it",
    Kind.STATEFUL_BACKWARD: "backward's result depends on earlier backward calls, or a later "
    "call changed a gradient an earlier one returned",
    Kind.IMPRECISE_GRADIENT: "backward is right up to rounding, but loses far more digits than "
    "a correctly rounded result would (not a failure unless --fail-on imprecise)",
}


def encode(value):
    """Exact, JSON-ready form of an array or scalar: shape, dtype and float.hex values."""
    if value is None:
        return None
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        return {"shape": list(array.shape), "dtype": str(array.dtype), "repr": repr(value)}
    flat = array.astype(np.float64).ravel().tolist()
    return {
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "hex": [float.hex(v) for v in flat],
        "values": [_short(v) for v in flat],
    }


def decode(encoded):
    """The ndarray that `encode` described (numeric arrays only)."""
    values = [float.fromhex(h) for h in encoded["hex"]]
    return np.array(values, dtype=encoded["dtype"]).reshape(encoded["shape"])


def _plain(value):
    if isinstance(value, np.ndarray):
        return encode(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _short(v):
    return repr(v) if math.isfinite(v) else str(v)


class Finding(AssertionError):
    """A counterexample: what went wrong, for which function, on which exact input.

    Raised by the checks; the pytest plugin serialises `to_dict()` into the report.
    """

    def __init__(self, kind, function, explanation, *, chain=(), input=None, **numbers):
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not one of {sorted(KINDS)}")
        self.kind = Kind(kind)
        self.function = function
        self.explanation = explanation
        self.chain = list(chain)
        self.input = input
        self.numbers = numbers
        self.property = None
        super().__init__(self.summary())

    def summary(self):
        chain = " -> ".join(self.chain) or self.function
        return f"{self.kind} in {self.function} (chain {chain}): {self.explanation}"

    def to_dict(self):
        """Plain JSON-ready data: arrays encoded exactly, numpy scalars as Python numbers."""
        numbers = {k: _plain(v) for k, v in self.numbers.items()}
        return {
            "function": self.function,
            "property": self.property,
            "kind": self.kind.value,
            "kind_meaning": KINDS[self.kind],
            "explanation": self.explanation,
            "chain": self.chain,
            "input": encode(self.input),
            **numbers,
        }
