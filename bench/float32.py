"""How much float32 rounding moves a correct backward's <g, q>, in float32 epsilons.

For every correct Function of examples/float32.py, on the graph property's cases
(ci-like: derandomized, 200 examples each), the float32 backward's <g, q> is
compared with the same backward rerun in long double; the ratio printed is

    |<g32 - g_wide, q>| / (eps32 * sum |g32 * q|)

Before a fail the check allows joint.BACKWARD_ULPS (64) of these units (plus
the oracle's own error); a fail is then rerun in long double and twice the
move measured there is allowed too, which is what a float32 output rounded near
saturation needs (Tanh's 1 - y * y). Run: python -m bench.float32 [examples]
"""

import sys

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradfuzz.adapters.dezero import load
from gradfuzz.findings import Finding
from gradfuzz.joint import BACKWARD_ULPS
from gradfuzz.registry import FunctionRegistry

EPS32 = float(np.finfo(np.float32).eps)


def ratios(cls, spec, examples):
    from strategies.graphs import graph_cases

    target = FunctionRegistry().add(cls, fuzz_spec=spec)
    found = []

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def measure(data):
        case = data.draw(graph_cases(target=target))
        try:
            g32 = case.call.gradients(case.x, case.gy)
            wide = case.call.gradients(case.x, case.gy, dtype=np.longdouble)
        except Finding:
            return
        terms = np.abs(g32 * case.d).sum()
        if terms > 0:
            found.append(abs(float(np.sum((g32 - wide) * case.d))) / (EPS32 * terms))

    measure()
    return found


def main(argv):
    load()
    from examples import float32

    examples = int(argv[0]) if argv else 200
    print(f"allowance: {BACKWARD_ULPS} eps32 of sum |g q|; {examples} examples per Function")
    for cls in float32.CORRECT:
        found = ratios(cls, float32.FUZZ_SPEC[cls], examples)
        print(
            f"{cls.__name__:7} n={len(found):3}  median={np.median(found):.3g}  "
            f"p99={np.percentile(found, 99):.3g}  max={max(found):.3g}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
