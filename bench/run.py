"""The harness's cost, measured in one run on this machine: tox -e bench.

Prints a Markdown table per measurement and writes everything to bench/results.json
(or the path given as the first argument). Nothing here asserts a speed: these
are measurements, not tests.
"""

import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import UnsatisfiedAssumption

import examples.correct as correct
import examples.wrong as wrong
from bench import sensitivity
from engine import Variable, square
from gradfuzz import profiles
from gradfuzz.checks import check_gradient, check_invariants, check_traversals
from gradfuzz.findings import Finding
from strategies import FunctionRegistry, cases, default_registry, defined_in

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POOL = FunctionRegistry([correct.Sin, correct.Tanh, correct.Cos]).specs()
TARGET = POOL[1]  # Sin
CHECKS = {"gradient": check_gradient, "traversals": check_traversals}
profiles.register()
CI = settings.get_profile("ci")  # the project's ci profile, not Hypothesis's built-in one


def _draw(strategy, examples):
    """(the cases a bare @given test with an empty body draws, its wall time)."""
    drawn = []

    @settings(
        max_examples=examples, derandomize=True, database=None, deadline=None,
        phases=[Phase.generate], suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(strategy)
    def bare(case):
        drawn.append(case)

    start = time.perf_counter()
    bare()
    return drawn, time.perf_counter() - start


def _engine_pass(case):
    """One plain forward and backward pass through the engine, without the harness."""
    x = Variable(case.x)
    y = x
    for spec in case.chain:
        y = spec.make()(y)
    y.grad = case.gy
    y.backward()


def _seconds(function, items):
    start = time.perf_counter()
    for item in items:
        function(item)
    return time.perf_counter() - start


def throughput():
    """Examples per second: bare generation, and generation plus each check."""
    rows = []
    for length in (1, 4, 16):
        for size in (1, 64, 4096):
            strategy = cases(
                target=TARGET, pool=POOL, min_length=length, max_length=length, shape=(size,)
            )
            drawn, generating = _draw(strategy, 100)
            bare = len(drawn) / generating
            row = {"chain": length, "elements": size, "bare_per_s": round(bare)}
            for name, check in CHECKS.items():
                again, generating_again = _draw(strategy, 100)
                start = time.perf_counter()
                valid = sum(_judged(check, c) for c in again)
                checking = time.perf_counter() - start
                rate = valid / (generating_again + checking)
                row[f"{name}_per_s"] = round(rate)
                row[f"{name}_ratio"] = round(rate / bare, 2)
                if name == "gradient":
                    plain = _seconds(_engine_pass, drawn) / len(drawn)
                    row["check_over_pass"] = round(checking / len(again) / plain, 1)
            rows.append(row)
    return rows


def _judged(check, case):
    """True when `check` judges `case`, False when it rejects it."""
    try:
        check(case)
    except UnsatisfiedAssumption:
        return False
    return True


def _ci_test(check, spec, pool, max_length):
    @CI
    @given(st.data())
    def test(data):
        check(data.draw(cases(target=spec, pool=pool, max_length=max_length)))

    return test


def detection():
    """Seconds from the start to the shrunk failure, per catalogued bug, under the ci profile.

    The properties run in the suite's order until one fails, as they do under pytest.
    """
    pool = default_registry().specs()
    rows = []
    for spec in FunctionRegistry(defined_in(wrong)).specs():
        start = time.perf_counter()
        found = None
        for name, check, max_length in (  # the order of properties/test_properties.py
            ("gradient", check_gradient, 1),
            ("gradient_of_chains", check_gradient, 6),
            ("invariants_hold", check_invariants, 6),
            ("traversals_agree", check_traversals, 6),
        ):
            try:
                _ci_test(check, spec, pool, max_length)()
            except Finding as finding:
                found = (name, finding.kind)
                break
            except BaseExceptionGroup as group:  # several distinct failures at once
                kinds = {e.kind for e in group.exceptions if isinstance(e, Finding)}
                if kinds:
                    found = (name, ", ".join(sorted(kinds)))
                    break
                raise
            except Exception:  # a harness error or an unsatisfiable search: no detection
                continue
        elapsed = time.perf_counter() - start
        rows.append(
            {"bug": spec.name, "property": found and found[0], "seconds": round(elapsed, 3)}
        )
    times = [r["seconds"] for r in rows]
    return {"bugs": rows, "median_s": statistics.median(times), "worst_s": max(times)}


def suite_wall_time():
    """Wall time of the tox test command (coverage + pytest) with -n 2 and with -n 0."""
    result = {}
    for workers in ("2", "0"):
        env = dict(os.environ, HYPOTHESIS_PROFILE="ci", COVERAGE_FILE=os.devnull + ".cov")
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "coverage", "run", "-m", "pytest", "-q", "-n", workers,
             "-p", "no:warnings", "--hypothesis-profile=ci", "properties", "tests"],
            cwd=REPO, env=env, check=False, capture_output=True,
        )  # fmt: skip
        result[f"n{workers}_s"] = round(time.perf_counter() - start, 1)
    result["speedup"] = round(result["n0_s"] / result["n2_s"], 2)
    return result


def depth():
    """Time and peak traced memory of backward() on chains of squares."""
    rows = []
    for n in (1_000, 10_000, 100_000):
        x = Variable(np.array(0.5))
        y = x
        for _ in range(n):
            y = square(y)
        gc.collect()
        tracemalloc.start()
        start = time.perf_counter()
        y.backward()
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows.append({"functions": n, "seconds": round(elapsed, 4), "peak_kib": round(peak / 1024)})
        del x, y
    return rows


def markdown(results):
    out = [f"Machine: {results['machine']}", ""]
    out += ["| chain | elements | bare ex/s | gradient ex/s | ratio | traversals ex/s | ratio "
            "| gradient check / one forward+backward |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in results["throughput"]:
        out.append(
            f"| {r['chain']} | {r['elements']} | {r['bare_per_s']} | {r['gradient_per_s']} | "
            f"{r['gradient_ratio']} | {r['traversals_per_s']} | {r['traversals_ratio']} | "
            f"{r['check_over_pass']}x |"
        )
    d = results["detection"]
    out += ["", f"Detect and shrink, {len(d['bugs'])} bugs: median {d['median_s']:.2f} s, "
            f"worst {d['worst_s']:.2f} s", "", "| bug | property | seconds |",
            "| --- | --- | ---: |"]  # fmt: skip
    out += [f"| {r['bug']} | {r['property']} | {r['seconds']} |" for r in d["bugs"]]
    w = results["suite"]
    out += ["", f"Test suite (coverage run -m pytest properties tests): -n 2 {w['n2_s']} s, "
            f"-n 0 {w['n0_s']} s, speed-up {w['speedup']}x"]  # fmt: skip
    out += ["", "| backward() depth | seconds | peak KiB |", "| ---: | ---: | ---: |"]
    out += [f"| {r['functions']} | {r['seconds']} | {r['peak_kib']} |" for r in results["depth"]]
    out += ["", "Sensitivity (x = caught):", "", sensitivity.table(results["sensitivity"])]
    return "\n".join(out)


def main(path):
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}, {platform.platform()}",
        "throughput": throughput(),
        "detection": detection(),
        "depth": depth(),
        "sensitivity": sensitivity.measure(),
    }
    if "--no-suite" not in sys.argv:
        results["suite"] = suite_wall_time()
    else:
        results["suite"] = {"n2_s": None, "n0_s": None, "speedup": None}
    print(markdown(results))
    with open(path, "w") as out:
        json.dump(results, out, indent=2)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(args[0] if args else os.path.join(REPO, "bench", "results.json"))
