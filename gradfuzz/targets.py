"""Loading --fuzz TARGETs: a .py file anywhere or a dotted module, optionally ending in :Name."""

import hashlib
import importlib
import importlib.util
import os
import sys

from gradfuzz import adapters
from gradfuzz.registry import FACTORIES_NAME, FunctionRegistry, defined_in, is_concrete
from gradfuzz.signature import SPEC_NAME


class TargetError(ValueError):
    """A TARGET that cannot be loaded; the message names it and says what to do."""


def split(target):
    """('path/or.module', 'Name' or None) from 'path/or.module[:Name]'.

    Raises TargetError for an empty class name ('file.py:').
    """
    source, sep, name = target.rpartition(":")
    if sep and source and not name:
        raise TargetError(
            f"--fuzz {target}: the class name after ':' is empty; "
            f"write {source}:ClassName, or {source} for every class"
        )
    if sep and source and name.isidentifier():
        return source, name
    return target, None


def load_module(source):
    """Import `source`, a path to a .py file or a dotted module name."""
    if source.endswith(".py") or os.sep in source or os.path.exists(source):
        path = os.path.abspath(source)
        if os.path.isdir(path):
            raise TargetError(
                f"--fuzz {source}: is a directory; pass a .py file or a dotted module name"
            )
        if not os.path.isfile(path):
            raise TargetError(f"--fuzz {source}: no such file")
        digest = hashlib.sha1(path.encode()).hexdigest()[:8]
        name = f"gradfuzz_target_{os.path.splitext(os.path.basename(path))[0]}_{digest}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                adapters.prepare(f.read())
            spec.loader.exec_module(module)
        except (Exception, SystemExit, KeyboardInterrupt) as e:
            del sys.modules[name]
            raise TargetError(f"--fuzz {source}: importing it {_what(e)}") from e
        return module
    try:
        adapters.prepare(source)
        return importlib.import_module(source)
    except SystemExit as e:
        raise TargetError(f"--fuzz {source}: importing it {_what(e)}") from e
    except Exception as e:
        raise TargetError(
            f"--fuzz {source}: cannot import module {source!r} ({type(e).__name__}: {e}); "
            "pass a path to a .py file or a dotted name importable from here"
        ) from e


def _what(exc):
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r}); a target must only define Functions"
    return f"raised {type(exc).__name__}: {exc}"


def classes(target, shipped=None):
    """The Function classes TARGET selects, with the module's factories and the source string.

    `shipped(module)`, when given, returns ({name: factory}, {name: fuzz spec}) that
    the project ships for a module it knows (dezero's); the module's own win.
    """
    return [(cls, factory, source) for cls, factory, _, source in _selected(target, shipped)]


def _selected(target, shipped=None):
    source, name = split(target)
    module = load_module(source)
    factories = getattr(module, FACTORIES_NAME, {})
    declared = getattr(module, SPEC_NAME, {})
    for what, value in ((FACTORIES_NAME, factories), (SPEC_NAME, declared)):
        if not isinstance(value, dict):
            raise TargetError(
                f"--fuzz {target}: {what} is {type(value).__name__}; it must be a dict "
                + ("{Class: factory}" if what == FACTORIES_NAME else "{Class: {key: value}}")
            )
    known_factories, known_specs = shipped(module) if shipped is not None else ({}, {})
    found = defined_in(module)
    if name is not None:
        obj = getattr(module, name, None)
        if obj is None:
            raise TargetError(
                f"--fuzz {target}: {source} has no attribute {name!r}; it defines "
                f"{sorted(c.__qualname__ for c in found) or 'no Function subclass'}"
            )
        if not is_concrete(obj):
            raise TargetError(
                f"--fuzz {target}: {name} is not a concrete engine.Function subclass "
                "(nor a dezero.Function one) with its own forward"
            )
        found = [obj]
    if not found:
        raise TargetError(
            f"--fuzz {target}: {source} defines no concrete engine.Function subclass "
            "(nor a dezero.Function one; classes imported into it are not fuzzed)"
        )
    by_name = {**known_factories, **{getattr(k, "__name__", k): v for k, v in factories.items()}}
    specs = {**known_specs, **{getattr(k, "__name__", k): v for k, v in declared.items()}}
    return [(cls, by_name.get(cls.__name__), specs.get(cls.__name__), source) for cls in found]


def registry_for(targets, shipped=None):
    """A FunctionRegistry of every class the TARGETs select, and {name: (source, class name)}.

    `shipped` is passed on to `classes`.
    """
    registry, sources = FunctionRegistry(), {}
    for target in targets:
        for cls, factory, declared, source in _selected(target, shipped):
            spec = registry.add(cls, factory=factory, fuzz_spec=declared)
            sources[spec.name] = (source, cls.__qualname__)
    return registry, sources
