"""Findings: structured exceptions that the checks raise and the report serialises."""

import math

import numpy as np

# Every kind of finding, with the one line a report prints for it.
KINDS = {
    "gradient_mismatch": "backward's gradient disagrees with the numerical derivative "
    "by more than the oracle's own error",
    "nonfinite_gradient": "backward returned inf or nan where forward is finite",
    "forward_raised": "forward raised an exception",
    "backward_raised": "backward raised an exception",
    "invalid_return": "forward or backward returned something that is not a numeric "
    "ndarray of the right shape",
    "wrong_shape": "the gradient's shape differs from its input's shape",
    "wrong_dtype": "the gradient's dtype is not floating",
    "input_mutated": "the call changed its input's data in place",
    "nondeterministic": "two backward passes over fresh graphs of the same chain differ",
    "traversal_mismatch": "backward() and backward_recursive() give different gradients",
    "recursion": "backward_recursive() failed in a way other than the documented RecursionError",
    "timeout": "the call did not return within the time limit",
    "cannot_build": "the harness cannot construct the Function with no arguments",
    "no_valid_input": "no input was found on which forward returns finite values",
    "harness_error": "the harness itself failed on this function; please report it",
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
        self.kind = kind
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
            "kind": self.kind,
            "kind_meaning": KINDS[self.kind],
            "explanation": self.explanation,
            "chain": self.chain,
            "input": encode(self.input),
            **numbers,
        }
