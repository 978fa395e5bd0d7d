"""The interface every engine adapter implements; see the package docstring."""

import inspect


class Adapter:
    """Drives one DeZero-like engine: build a graph, backpropagate, read gradients.

    Subclasses set `name`, `function_base`, `max_inputs`, `higher_order` and
    `broadcasts` (False: the inputs of one call are drawn with one shape), and
    implement the methods below. Every method may raise whatever the engine
    raises; the harness turns that into a Finding against the right Function.
    """

    name = "abstract"
    function_base = None
    max_inputs = None
    higher_order = False
    broadcasts = True

    def owns(self, cls):
        """True when `cls` is a Function class of this engine."""
        base = self.function_base
        return base is not None and inspect.isclass(cls) and issubclass(cls, base)

    def concrete(self, cls):
        """True for a Function class of this engine that defines its own forward."""
        forward = getattr(cls, "forward", None)
        return (
            self.owns(cls)
            and cls is not self.function_base
            and callable(forward)
            and forward is not getattr(self.function_base, "forward", None)
            and not inspect.isabstract(cls)
        )

    def variable(self, array):
        raise NotImplementedError

    def call(self, f, variables):
        raise NotImplementedError

    def data(self, v):
        return v.data

    def backward(self, outputs, gys, *, create_graph=False):
        raise NotImplementedError

    def gradient(self, v):
        raise NotImplementedError

    def gradient_variable(self, v):
        raise NotImplementedError(f"the {self.name} adapter has no higher-order gradients")

    def clear(self, v):
        v.grad = None

    def glue(self):
        """{"add": cls, "mul": cls}: two-input Function classes of the engine that join the
        branches of a DAG (elementwise, broadcasting), or None when it has none."""
        return None

    def __repr__(self):
        return f"<{self.name} adapter>"
