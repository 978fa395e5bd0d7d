"""gradfuzz side by side with torch.autograd.gradcheck, on the same Functions: tox -e bench-peers.

python -m bench.peers [N] [out.json]   (N gradcheck inputs per Function; default 60)

The correct and awkward catalogues (examples/correct.py, examples/awkward.py) are
wrapped as torch.autograd.Functions whose forward and backward call the numpy
code in float64. gradcheck runs at its defaults (eps=1e-6, atol=1e-5, rtol=1e-3)
on N inputs per Function: the first inputs of at most 16 elements that gradfuzz's
gradient property draws for that Function alone under the ci profile (and, as a
second column, the first N/10 draws of any size). gradfuzz runs its four
properties' draws and checks under the ci profile in this process. Both are timed
in CPU seconds of this process, which the other load of a shared machine hardly
changes. Printed and written (bench/peers.json, bench/peers.md): CPU time per judged
gradfuzz example (the four properties' time over the examples they judged) against
CPU time per gradcheck input, per Function and as a median. Measurements, not
tests: nothing here asserts a speed.
"""

import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
from hypothesis import HealthCheck, Phase, given, settings

from bench.run import _ci_test
from engine import Variable
from gradfuzz import guard, targets
from gradfuzz.checks import check_gradient, check_invariants, check_traversals
from gradfuzz.registry import default_registry
from strategies import cases

# One thread, as gradfuzz has: torch's idle intra-op threads spin, which CPU time would count.
torch.set_num_threads(1)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CATALOGUES = [os.path.join(REPO, "examples", f"{name}.py") for name in ("correct", "awkward")]
BENCH = os.path.join(REPO, "bench")


def as_torch(spec):
    """A torch.autograd.Function whose forward and backward are `spec`'s numpy code."""

    class Wrapped(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            f = spec.make()
            y = f(Variable(x.detach().numpy().copy()))
            ctx.function = f
            return torch.from_numpy(np.array(y.data, dtype=np.float64))

        @staticmethod
        def backward(ctx, gy):
            gx = ctx.function.backward(gy.detach().numpy().copy())
            return torch.from_numpy(np.array(gx, dtype=np.float64))

    Wrapped.__name__ = spec.name
    return Wrapped


# gradcheck builds the whole Jacobian: its cost grows with the square of the elements,
# where gradfuzz's directional check grows linearly. The headline compares on small inputs,
# where gradcheck is cheapest; the draws of every size are measured too.
SMALL = 16


def drawn_inputs(spec, n, max_size=None):
    """The first `n` inputs (of at most `max_size` elements) that the ci profile's gradient
    property draws for `spec` alone."""
    drawn = []

    @settings(
        max_examples=10 * n, derandomize=True, database=None, deadline=None,
        phases=[Phase.generate], suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(cases(target=spec, max_length=1))
    def draw(case):
        if len(drawn) < n and (max_size is None or case.x.size <= max_size):
            drawn.append(case.x)

    draw()
    return drawn


def gradcheck_time(spec, inputs):
    """(CPU seconds of gradcheck at its defaults on every input, how many inputs it failed)."""
    wrapped = as_torch(spec)
    failed = 0
    start = time.process_time()
    for x in inputs:
        t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        try:
            ok = torch.autograd.gradcheck(wrapped.apply, (t,), raise_exception=False)
        except Exception:  # a forward or backward that raises is a failure
            ok = False
        failed += not ok
    return time.process_time() - start, failed


# The four properties of properties/test_properties.py: check and longest chain.
PROPERTIES = (
    ("gradient", check_gradient, 1),
    ("gradient_of_chains", check_gradient, 6),
    ("traversals_agree", check_traversals, 6),
    ("invariants_hold", check_invariants, 6),
)


def gradfuzz_time(spec, pool):
    """(CPU seconds of the four properties under the ci profile, examples judged, findings).

    The properties' draws and checks, in this process, with the time limit's alarm armed
    once per property as the plugin arms it per test: without pytest, the plugin's
    isolation and watchdog (measured by `tox -e bench`) or the report.
    """
    judged, findings = [0], []

    def counted(check):
        def run(case):
            check(case)
            judged[0] += 1  # not reached when the check rejects the example

        return run

    start = time.process_time()
    for name, check, max_length in PROPERTIES:
        try:
            with guard.watch():
                _ci_test(counted(check), spec, pool, max_length)()
        except Exception as e:  # a finding on a correct Function: a false alarm, shown
            findings.append(f"{name}: {getattr(e, 'kind', type(e).__name__)}")
    return time.process_time() - start, judged[0], findings


def measure(n):
    registry, _ = targets.registry_for(CATALOGUES)
    pool = default_registry().specs()
    rows = []
    first = registry.specs()[0]  # one-time costs (torch's and Hypothesis's set-up) go first
    gradcheck_time(first, drawn_inputs(first, 1))
    gradfuzz_time(first, pool)
    for spec in registry.specs():
        inputs = drawn_inputs(spec, n, SMALL)
        seconds, failed = gradcheck_time(spec, inputs)
        every = drawn_inputs(spec, max(n // 10, 1))
        every_seconds, _ = gradcheck_time(spec, every)
        fuzz_s, judged, findings = gradfuzz_time(spec, pool)
        per_example = fuzz_s / judged if judged else float("nan")
        per_input = seconds / len(inputs)
        rows.append({
            "function": spec.name,
            "gradfuzz_ms_per_example": round(1e3 * per_example, 3),
            "gradfuzz_judged": judged,
            "gradfuzz_findings": findings,
            "gradcheck_ms_per_input": round(1e3 * per_input, 3),
            "gradcheck_inputs": len(inputs),
            "gradcheck_failed": failed,
            "ratio": round(per_example / per_input, 2),
            "gradcheck_ms_per_input_any_size": round(1e3 * every_seconds / len(every), 3),
            "gradcheck_inputs_any_size": len(every),
            "ratio_any_size": round(per_example * len(every) / every_seconds, 2),
        })  # fmt: skip
        print(rows[-1], flush=True)
    fuzzed = [r["gradfuzz_ms_per_example"] * r["gradfuzz_judged"] for r in rows]
    checked = [r["gradcheck_ms_per_input"] * r["gradcheck_inputs"] for r in rows]
    ratios = [r["ratio"] for r in rows if np.isfinite(r["ratio"])]
    ratios_any = [r["ratio_any_size"] for r in rows if np.isfinite(r["ratio_any_size"])]
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}",
        "load_average": os.getloadavg(),
        "command": "tox -e bench-peers",
        "gradfuzz_cpu_s": round(sum(fuzzed) / 1e3, 1),
        "gradcheck_cpu_s": round(sum(checked) / 1e3, 1),
        "median_ratio": statistics.median(ratios),
        "median_ratio_any_size": statistics.median(ratios_any),
        "functions": rows,
    }


def markdown(results):
    out = [
        f"Machine: {results['machine']}; load average at the end "
        f"{', '.join(f'{v:.1f}' for v in results['load_average'])}; `{results['command']}`.",
        "",
        f"CPU time: gradfuzz's four properties under the ci profile {results['gradfuzz_cpu_s']} s; "
        f"gradcheck on its {SMALL}-element inputs {results['gradcheck_cpu_s']} s. "
        f"**Median ratio, gradcheck on inputs of at most {SMALL} elements: "
        f"{results['median_ratio']:.2f}x**; on the draws of any size: "
        f"{results['median_ratio_any_size']:.3f}x.",
        "",
        "| function | gradfuzz CPU ms / judged example | judged | findings "
        f"| gradcheck CPU ms / input (<= {SMALL} elements) | inputs | gradcheck failed | ratio "
        "| gradcheck CPU ms / input (any size) | inputs | ratio |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["functions"]:
        out.append(
            f"| {r['function']} | {r['gradfuzz_ms_per_example']} | {r['gradfuzz_judged']} | "
            f"{', '.join(r['gradfuzz_findings']) or 'none'} | {r['gradcheck_ms_per_input']} "
            f"| {r['gradcheck_inputs']} "
            f"| {r['gradcheck_failed']} | {r['ratio']}x | {r['gradcheck_ms_per_input_any_size']} "
            f"| {r['gradcheck_inputs_any_size']} | {r['ratio_any_size']}x |"
        )
    return "\n".join(out)


def main(argv):
    n = int(argv[0]) if argv else 60
    path = argv[1] if len(argv) > 1 else os.path.join(BENCH, "peers.json")
    results = measure(n)
    table = markdown(results)
    print(table)
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.splitext(path)[0] + ".md", "w") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
