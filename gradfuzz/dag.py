"""One call of a Function of any adapted engine, seen as a function of one flat vector.

The graph properties fuzz a Function with several inputs (and parameters drawn
from their shapes) through its engine's adapter. To judge it with the same
forward-only oracle as a chain, the call is packed: `Packed.forward(z)` splits
the flat vector z into the differentiated inputs, adds the integer and constant
ones, calls a fresh copy of the Function through the adapter and returns every
output raveled into one vector. A directional derivative of the packed function
along q is then the joint directional derivative along every input at once (or
along one input alone, where q is zero elsewhere).
"""

import contextlib
import copy
import functools
import pickle

import numpy as np

from engine import Function
from gradfuzz import guard
from gradfuzz.findings import Finding, Kind, encode
from gradfuzz.graph import numeric, same
from gradfuzz.registry import Spec


class Call:
    """A Function instance and its inputs: which are differentiated, and the fixed ones."""

    def __init__(self, spec, function, arrays, free=None, program=None):
        self.spec = spec
        self.adapter = spec.adapter
        self.function = function  # never called itself: every pass calls a deep copy
        self.dtype = spec.signature.dtype  # of the float inputs backward is handed
        self.arrays = [_as(np.array(a, copy=True), self.dtype) for a in arrays]
        self.free = list(spec.signature.differentiated() if free is None else free)
        # A DAG instead of one call: steps (kind, operand indices), kind "f" for the
        # Function under test or a name of the adapter's glue(); values are the
        # inputs, then each step's output; the last one is the output.
        self.program = None if program is None else tuple((k, tuple(o)) for k, o in program)

    def program_text(self):
        """The DAG as lines `v2 = Square(v0, v1)`, or None for a single call."""
        if self.program is None:
            return None
        first = len(self.arrays)
        return "; ".join(
            f"v{first + i} = {self.name if kind == 'f' else kind}"
            f"({', '.join(f'v{j}' for j in operands)})"
            for i, (kind, operands) in enumerate(self.program)
        )

    @property
    def name(self):
        return self.spec.name

    def pack(self):
        """z: the differentiated inputs, raveled and concatenated."""
        parts = [np.ravel(self.arrays[i]).astype(np.float64) for i in self.free]
        return np.concatenate(parts) if parts else np.zeros(0)

    def unpack(self, z):
        """Every input array, the differentiated ones taken from z."""
        arrays, start = list(self.arrays), 0
        for i in self.free:
            size = self.arrays[i].size
            arrays[i] = np.asarray(z[start : start + size]).reshape(self.arrays[i].shape)
            start += size
        return arrays

    def segments(self):
        """{input index: slice of z}."""
        found, start = {}, 0
        for i in self.free:
            found[i] = slice(start, start + self.arrays[i].size)
            start += self.arrays[i].size
        return found

    def parameters(self):
        """The Function instance's attributes before any call, as text, for the report."""
        return {k: repr(v) for k, v in sorted(vars(self.function).items())}

    def _run(self, f, variables):
        if self.program is None:
            return self.adapter.call(f, variables)
        values, glue = list(variables), self.adapter.glue()
        for kind, operands in self.program:
            step = copy.deepcopy(f) if kind == "f" else glue[kind]()
            values.append(self.adapter.call(step, [values[j] for j in operands])[0])
        return [values[-1]]

    def described(self, arrays):
        """Add the inputs and parameters to a Finding raised inside, for the report and replay."""
        return _described(self, arrays)

    def pickled(self):
        """The unused Function instance, pickled as hex, for the replay; None if it cannot be."""
        try:
            return pickle.dumps(self.function).hex()
        except Exception:  # a lambda or an open file among its parameters
            return None

    def forward(self, arrays):
        """(the fresh Function, its input Variables, its outputs) after one forward pass."""
        f = copy.deepcopy(self.function)
        variables = [self.adapter.variable(a) for a in arrays]
        kept = [np.array(a, copy=True) for a in arrays]
        with self.described(arrays):
            outputs = guard.run(
                lambda: self._run(f, variables),
                function=self.name,
                stage="forward",
                chain=[self.name],
                input=arrays[0],
            )
        for i, (old, v) in enumerate(zip(kept, variables, strict=True)):
            if not same(old, self.adapter.data(v)):
                raise _finding(
                    Kind.INPUT_MUTATED, self, f"forward changed input {i} in place", arrays
                )
        for y in outputs:
            data = self.adapter.data(y)
            if type(data) is not np.ndarray or not numeric(data, "iuf"):
                raise _finding(
                    Kind.INVALID_RETURN,
                    self,
                    f"forward returned {type(data).__name__} {data!r:.60}; "
                    "it must return numeric numpy.ndarrays",
                    arrays,
                )
        return f, variables, outputs

    def finite_in_its_dtype(self, z):
        """True when forward, handed z's inputs in the Function's dtype, returns finite values
        (the oracle evaluates forward in float64, where float32's overflow is not seen)."""
        with np.errstate(all="ignore"):
            _, _, outputs = self.forward([_as(a, self.dtype) for a in self.unpack(z)])
        return all(np.all(np.isfinite(self.adapter.data(y))) for y in outputs)

    def gradients(self, z, gy, dtype=None):
        """Backward's gradient of every differentiated input, packed like z.

        `gy` is the packed upstream gradient. Raises a Finding when backward
        raises, hangs, changes an input, or gives a differentiated input no
        gradient, a gradient that is not a floating ndarray, or one of the wrong shape.
        The float inputs and gy are cast to `dtype`, by default the one the
        Function declares; `np.longdouble` measures that pass's own rounding.
        """
        dtype = self.dtype if dtype is None else dtype
        arrays = [_as(a, dtype) for a in self.unpack(np.asarray(z, dtype=np.longdouble))]
        gy = np.asarray(gy, dtype=dtype)
        _, variables, outputs = self.forward(arrays)
        gys, start = [], 0
        for y in outputs:
            data = self.adapter.data(y)
            gys.append(np.asarray(gy[start : start + data.size]).reshape(data.shape))
            start += data.size
        kept = [np.array(a, copy=True) for a in arrays]
        with np.errstate(all="ignore"), self.described(arrays):
            guard.run(
                lambda: self.adapter.backward(outputs, gys),
                function=self.name,
                stage="backward",
                chain=[self.name],
                input=arrays[0],
            )
        for i, (old, v) in enumerate(zip(kept, variables, strict=True)):
            if not same(old, self.adapter.data(v)):
                raise _finding(
                    Kind.INPUT_MUTATED, self, f"backward changed input {i} in place", arrays
                )
        parts = []
        for i in self.free:
            g = self.adapter.gradient(variables[i])
            _check_gradient(self, i, g, arrays)
            parts.append(np.ravel(g).astype(dtype))
        return np.concatenate(parts)

    def packed_spec(self):
        """A one-Function chain of the engine whose forward is this call, for the oracle."""
        return Spec(self.name, Packed, lambda: Packed(self), self.spec.domain)


class Packed(Function):
    """The call as a stage-1 engine Function of the flat vector z (see the module docstring)."""

    def __init__(self, call):
        self.call = call

    def forward(self, z):
        _, _, outputs = self.call.forward(self.call.unpack(z))
        data = [np.ravel(self.call.adapter.data(y)) for y in outputs]
        return np.concatenate(data).astype(np.float64) if data else np.zeros(0)

    def backward(self, gy):
        raise NotImplementedError("the packed call is judged through its adapter's backward")


def _as(a, dtype):
    """`a` in `dtype` when it is a float array; integer inputs keep theirs."""
    return a.astype(dtype) if a.dtype.kind == "f" else a


def _check_gradient(call, i, g, arrays):
    shape = call.arrays[i].shape
    if g is None:
        raise _finding(
            Kind.INVALID_RETURN,
            call,
            f"backward left input {i} without a gradient (None); every float input "
            "that forward uses needs one",
            arrays,
        )
    # An ndarray, or a numpy scalar for a 0-d input (as the chains accept); no subclass.
    if not numeric(g) or (isinstance(g, np.ndarray) and type(g) is not np.ndarray):
        raise _finding(
            Kind.INVALID_RETURN,
            call,
            f"backward gave input {i} the gradient {type(g).__name__} {g!r:.60}; "
            "it must be a numeric numpy.ndarray",
            arrays,
        )
    if g.shape != shape:
        raise _finding(
            Kind.WRONG_SHAPE,
            call,
            f"backward returned shape {g.shape} for input {i} of shape {shape}"
            + (
                " (a broadcast input's gradient must be summed back to its shape)"
                if g.ndim > len(shape) or g.size > int(np.prod(shape))
                else ""
            ),
            arrays,
        )
    if g.dtype.kind != "f":
        raise _finding(
            Kind.WRONG_DTYPE,
            call,
            f"backward returned dtype {g.dtype} for input {i}; a gradient must be floating",
            arrays,
        )


def _finding(kind, call, explanation, arrays, **numbers):
    return Finding(
        kind, call.name, explanation, chain=[call.name], **describe(call, arrays), **numbers
    )


@contextlib.contextmanager
def _described(call, arrays):
    try:
        yield
    except Finding as finding:
        for key, value in describe(call, arrays).items():
            finding.numbers.setdefault(key, value)
        raise


def describe(call, arrays):
    """What a Finding about a call carries: its inputs, exactly, and its parameters."""
    arrays = [_as(np.asarray(a), call.dtype) for a in arrays]  # as the Function receives them
    return {
        "input": arrays[0],
        "inputs": [encode(a) for a in arrays],
        "parameters": call.parameters(),
        "engine": call.adapter.name,
        "instance": call.pickled(),
        "differentiated": list(call.free),
        **({"program": [[k, list(o)] for k, o in call.program]} if call.program else {}),
        **({"dag": call.program_text()} if call.program else {}),
        **(
            {"first_upstream_grad": call.gy, "second_direction": call.v}
            if isinstance(call, SecondCall)
            else {}
        ),
    }


class SecondCall:
    """The second derivative of a Call: s(z) = <g(z), v>, g being backward's gradient for gy.

    The oracle differentiates s numerically (each s is one first-order backward);
    backward's second derivative is <gy, f>'s Hessian along v, from backpropagating
    the gradients that a `create_graph=True` backward built (adapters with
    `higher_order` only). It has the interface of a Call that `joint` checks.
    """

    order = "second derivative"

    def __init__(self, call, gy, v):
        self.call, self.gy, self.v = call, np.array(gy, copy=True), np.array(v, copy=True)

    def __getattr__(self, name):  # pack, unpack, segments, free, name, spec, adapter, ...
        return getattr(self.call, name)

    def first(self, z):
        """s(z) = <backward's gradient at z for gy, v>, as a 0-d array, in float64 (for a
        float32 Function too: the oracle's reference is the more precise one)."""
        # A Finding of the first backward carries gy and v too, so that its replay can run.
        with _described(self, self.call.unpack(z)):
            return np.array(np.sum(self.call.gradients(z, self.gy, dtype=np.float64) * self.v))

    def gradients(self, z, gy2, dtype=None):
        """gy2 times backward's gradient of s at z, packed like z (in the declared dtype)."""
        dtype = self.call.dtype if dtype is None else dtype
        arrays = [_as(a, dtype) for a in self.call.unpack(np.asarray(z, dtype=np.longdouble))]
        with _described(self, arrays):
            return self._gradients(arrays, gy2, dtype)

    def _gradients(self, arrays, gy2, dtype):
        call, adapter = self.call, self.call.adapter
        _, variables, outputs = call.forward(arrays)
        gys, start = [], 0
        for y in outputs:
            size = adapter.data(y).size
            gys.append(
                np.asarray(self.gy[start : start + size], dtype=dtype).reshape(
                    adapter.data(y).shape
                )
            )
            start += size
        blame = functools.partial(_helper_or, call)
        with np.errstate(all="ignore"), call.described(arrays):
            guard.run(
                lambda: adapter.backward(outputs, gys, create_graph=True),
                function=blame,
                stage="backward",
                chain=[call.name],
                input=arrays[0],
            )
            firsts = [adapter.gradient_variable(variables[i]) for i in call.free]
            for i in call.free:
                adapter.clear(variables[i])
            scale = float(np.ravel(gy2)[0])
            for gx, where in zip(firsts, call.segments().values(), strict=True):
                if gx is None:
                    continue
                seed = (scale * self.v[where]).reshape(adapter.data(gx).shape).astype(dtype)
                guard.run(
                    lambda gx=gx, seed=seed: adapter.backward([gx], [seed]),
                    function=blame,
                    stage="backward",
                    chain=[call.name],
                    input=arrays[0],
                )
        parts = []
        for i in call.free:
            g = adapter.gradient(variables[i])
            if g is None:  # nothing of the first gradient depends on this input
                g = np.zeros(call.arrays[i].shape, dtype=dtype)
            _check_gradient(call, i, g, arrays)
            parts.append(np.ravel(g).astype(dtype))
        return np.concatenate(parts)

    def packed_spec(self):
        return Spec(self.call.name, SecondPacked, lambda: SecondPacked(self), self.call.spec.domain)


def _helper_or(call, exc):
    """The Function to blame for `exc` in a second backward: the deepest engine Function
    whose own backward is on the traceback, when it is a helper that the first backward
    built (Conv2d's Conv2DGradW) and not the Function under test; else the one under test."""
    base, blamed = call.adapter.function_base, call.name
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if tb.tb_frame.f_code.co_name == "backward" and isinstance(owner, base):
            helper = type(owner)
            blamed = call.name if helper is type(call.function) else helper.__qualname__
        tb = tb.tb_next
    return blamed


class SecondPacked(Function):
    """s(z) of a SecondCall as a stage-1 engine Function, for the oracle."""

    def __init__(self, second):
        self.second = second

    def forward(self, z):
        return self.second.first(z)

    def backward(self, gy):
        raise NotImplementedError("the packed second derivative is judged through its adapter")
