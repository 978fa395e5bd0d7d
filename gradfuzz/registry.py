"""The registry of Function classes to fuzz, in a stable order."""

import functools
import inspect
from dataclasses import dataclass, field

from gradfuzz import adapters
from gradfuzz.signature import Signature, factory_takes_shapes, signature

# The module-level name under which a target lists zero-argument factories for
# classes whose constructor needs arguments: {ClassName: lambda: ClassName(3)}.
FACTORIES_NAME = "FUZZ_FACTORIES"


@dataclass(frozen=True)
class Spec:
    """One Function class to fuzz: its name, a zero-argument factory and its declared domain.

    `problem` explains why the harness cannot build it; its tests then report
    that as a finding instead of fuzzing.
    """

    name: str
    cls: type
    factory: object = field(compare=False)
    domain: tuple = (None, None)
    problem: str | None = None
    adapter: object = field(default=None, compare=False)  # None: the stage-1 engine
    signature: Signature = field(default=Signature(), compare=False)

    @functools.cached_property
    def built_without_user_code(self):
        """True when make() runs none of the user's code: the class itself, with the
        object's own __new__ and __init__ and no metaclass, so nothing to guard."""
        cls = self.factory
        return (
            self.problem is None
            and cls is self.cls
            and type(cls) is type
            and cls.__new__ is object.__new__
            and cls.__init__ is object.__init__
        )

    def make(self):
        if self.problem:
            raise TypeError(self.problem)
        return self.factory()

    @property
    def chainable(self):
        """True for a one-input engine Function built without arguments: the chain properties.

        Every other Function (several inputs, another engine, parameters drawn from
        the input shapes) goes through the graph properties instead.
        """
        return (
            (self.adapter is None or self.adapter.name == "engine")
            and self.signature == Signature()
            and self.signature.shapes is None
            and self.signature.build is None
            and not self.draws_parameters
        )

    @property
    def draws_parameters(self):
        """True when the factory is `lambda draw, shapes: ...`."""
        return self.factory is not self.cls and factory_takes_shapes(self.factory)

    def make_for(self, draw, shapes):
        """A fresh instance for inputs of `shapes`, drawing its parameters with `draw`."""
        if self.problem:
            raise TypeError(self.problem)
        if self.draws_parameters:
            return self.factory(draw, shapes)
        return self.factory()

    def __repr__(self):
        return self.name

    def _repr_pretty_(self, printer, cycle):  # Hypothesis prints examples with this
        printer.text(repr(self))


def is_concrete(obj):
    """True for a Function subclass of an adapted engine that defines its own forward."""
    adapter = adapters.for_class(obj) if inspect.isclass(obj) else None
    return adapter is not None and adapter.concrete(obj)


def defined_in(module):
    """The concrete Function subclasses defined (not merely imported) in `module`."""
    return [
        obj
        for obj in vars(module).values()
        if is_concrete(obj) and obj.__module__ == module.__name__
    ]


def declared_domain(cls):
    """`cls.domain` as an open interval (lo, hi), None for unbounded; ValueError if malformed."""
    domain = getattr(cls, "domain", (None, None))
    ok = isinstance(domain, tuple) and len(domain) == 2
    ok = ok and all(b is None or isinstance(b, int | float) for b in domain)
    if ok and None not in domain and not domain[0] < domain[1]:
        ok = False
    if not ok:
        raise ValueError(
            f"{cls.__qualname__}.domain={domain!r} must be a tuple (lo, hi) of numbers or None "
            "with lo < hi, e.g. domain = (0, None) for a log"
        )
    return domain


def _needs_arguments(cls):
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return False
    return any(
        p.default is p.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        for p in signature.parameters.values()
    )


class FunctionRegistry:
    """Function classes to fuzz, kept sorted by qualified name so every xdist worker agrees."""

    def __init__(self, classes=(), factories=None):
        self._specs = {}
        for cls in classes:
            self.add(cls, factory=(factories or {}).get(cls))

    def add(self, cls, *, factory=None, fuzz_spec=None):
        """Register `cls`; `factory` is a zero-argument callable for classes that need arguments,
        or `lambda draw, shapes: ...` that draws them; `fuzz_spec` is its FUZZ_SPEC entry.
        """
        if not is_concrete(cls):
            raise TypeError(
                f"{cls!r} is not a concrete engine.Function subclass with its own forward"
            )
        problem = None
        try:
            domain = declared_domain(cls)
        except ValueError as e:
            domain, problem = (None, None), str(e)
        try:
            declared = signature(cls, fuzz_spec)
        except ValueError as e:
            declared, problem = Signature(), problem or str(e)
        if factory is None:
            if _needs_arguments(cls):
                problem = problem or (
                    f"{cls.__qualname__}() needs constructor arguments; list a zero-argument "
                    f"factory for it in the module-level dict {FACTORIES_NAME}"
                )
            factory = cls
        elif not callable(factory):
            problem = f"the factory for {cls.__qualname__} is {factory!r}, which is not callable"
        name = cls.__qualname__
        if any(s.name == name and s.cls is not cls for s in self._specs.values()):
            name = f"{cls.__module__}.{cls.__qualname__}"
        adapter = adapters.for_class(cls)
        self._specs[cls] = Spec(name, cls, factory, domain, problem, adapter, declared)
        return self._specs[cls]

    def specs(self):
        """Every registered Spec, sorted by name."""
        return sorted(self._specs.values(), key=lambda s: s.name)

    def __len__(self):
        return len(self._specs)


def default_registry():
    """A registry of the engine's own Functions: Exp and Square."""
    from engine import functions

    return FunctionRegistry(defined_in(functions))
