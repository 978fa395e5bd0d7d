"""Replaying one finding outside Hypothesis: the engine of the repro_<id>.py scripts."""

import numpy as np
from hypothesis.errors import UnsatisfiedAssumption

from gradfuzz import graph as chains
from gradfuzz import targets
from gradfuzz.checks import CHECKS
from gradfuzz.findings import Finding, decode
from gradfuzz.registry import FunctionRegistry, default_registry
from strategies.arrays import valid_input
from strategies.cases import Case


def _specs(names, sources):
    engine = {s.name: s for s in default_registry().specs()}
    specs = []
    for name in names:
        if name not in sources:
            specs.append(engine[name])
            continue
        source, qualname = sources[name]
        [(cls, factory, _)] = targets.classes(f"{source}:{qualname}")
        specs.append(FunctionRegistry().add(cls, factory=factory))
    return specs


def _array(finding, key, default):
    value = finding.get(key)
    return decode(value) if isinstance(value, dict) and "hex" in value else default


def replay(finding, sources):
    """Run the finding's check on its exact case; print the outcome.

    Returns 1 while the check still finds a problem, 0 once it passes, 2 when
    the check rejects the input (a kink, or outside the domain).
    """
    chain = _specs(finding["chain"], sources)
    print(f"replaying {finding['kind']} in {finding['function']}: {' -> '.join(finding['chain'])}")
    try:
        x = _array(finding, "input", None)
        if x is None:
            found = valid_input(chain, np.zeros(()))
            if found is None:
                print("still no valid input: forward is not finite at any anchor point")
                return 1
            x = found[0]
        shape = chains.build(chain, x).y.data.shape
        gy = _array(finding, "upstream_grad", np.full(shape, 1.5))
        d = _array(finding, "direction", np.ones_like(x))
        verdict = CHECKS[finding["property"]](Case(finding["function"], tuple(chain), x, gy, d))
    except Finding as f:
        print(f"still failing: {f.summary()}")
        for key in ("analytic", "numerical", "abs_error", "tolerance"):
            if key in f.numbers:
                print(f"  {key:>9} = {f.numbers[key]!r}")
        return 1
    except UnsatisfiedAssumption:
        print("the check rejects this input now (a kink, overflow or the domain's edge)")
        return 2
    if verdict is not None:
        print(f"  analytic  = {verdict.analytic!r}\n  numerical = {verdict.numerical!r}")
        print(f"  tolerance = {verdict.tolerance!r}")
    print("passes: the bug is fixed")
    return 0
