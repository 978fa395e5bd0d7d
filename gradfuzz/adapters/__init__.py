"""Engine adapters: how the harness drives one DeZero-like engine.

The graph properties never touch an engine's Variable or Function directly; they
go through an `Adapter`, a small object with these members (see `base.Adapter`):

- `name`: a short name shown in the report (`"engine"`, `"dezero"`);
- `function_base`: the engine's Function class; its concrete subclasses are fuzzed;
- `max_inputs`: how many inputs one Function call may take (None: any number);
- `higher_order`: True when backward can itself be differentiated (create_graph);
- `broadcasts`: False when the engine's Functions do not sum a broadcast input's
  gradient back (dezero.core_simple): the inputs of one call then share one shape;
- `variable(array)`: a leaf Variable holding `array`;
- `call(f, variables)`: call the Function instance `f`; returns the list of outputs;
- `data(v)`: the ndarray a Variable holds;
- `backward(outputs, gys, create_graph=False)`: seed each output's gradient with
  the ndarray in `gys` and backpropagate through the whole graph once;
- `gradient(v)`: the ndarray gradient a leaf received, or None;
- `gradient_variable(v)`: with create_graph, the gradient as a Variable to differentiate;
- `clear(v)`: forget v's gradient before another backward;
- `glue()`: {"add": cls, "mul": cls}, the engine's own two-input Functions that
  join the branches of a DAG, or None (no DAG property).

`for_class(cls)` picks the adapter whose `function_base` `cls` subclasses:
`dezero` for a subclass of `dezero.Function` (the package that pip installs,
or the book's repository on sys.path), `dezero.core_simple` for one of
`dezero.core_simple.Function` (steps 23-32 of the book), else the stage-1 `engine`. A DeZero-like
engine of your own plugs in by subclassing `base.Adapter` and passing an
instance to `register`.
"""

from gradfuzz.adapters.base import Adapter
from gradfuzz.adapters.stage1 import Stage1

__all__ = ["Adapter", "Stage1", "for_class", "prepare", "register", "registered"]

_registered = []


def register(adapter):
    """Put `adapter` first among the adapters `for_class` consults; returns it."""
    if not isinstance(adapter, Adapter):
        raise TypeError(f"adapter={adapter!r} is not a gradfuzz.adapters.Adapter")
    _registered.insert(0, adapter)
    return adapter


def registered():
    """The adapters in the order `for_class` tries them: user adapters, dezero, engine."""
    from gradfuzz.adapters import dezero

    return [*_registered, *dezero.adapters(), Stage1()]


def for_class(cls):
    """The adapter whose engine defines `cls`'s Function base class, or None."""
    for adapter in registered():
        if adapter.owns(cls):
            return adapter
    return None


def prepare(source_text):
    """Before a target is imported: load dezero through its numpy shim if the target uses it."""
    from gradfuzz.adapters import dezero

    if "dezero" in source_text:
        dezero.load()
