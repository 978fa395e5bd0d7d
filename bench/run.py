"""The harness's cost, measured in one run on this machine: tox -e bench.

Prints a Markdown table per measurement and writes everything to bench/results.json
(or the path given as the first argument). Nothing here asserts a speed: these
are measurements, not tests.
"""

import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
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
from examples.tiny_engine import make_engine
from gradfuzz import adapters, guard, profiles, replay
from gradfuzz.checks import check_gradient, check_invariants, check_traversals
from gradfuzz.findings import Finding
from gradfuzz.joint import check_graph_gradient
from strategies import FunctionRegistry, cases, default_registry, defined_in
from strategies.graphs import graph_cases

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


def _per_example(check, drawn):
    """Mean CPU seconds of `check` over the drawn cases, and how many it judged.

    CPU time of this process, not wall time: on a shared machine it hardly depends
    on what the others run.
    """
    start = time.process_time()
    judged = sum(_judged(check, c) for c in drawn)
    return (time.process_time() - start) / len(drawn), judged


def scaling():
    """Time per gradient example as the chain grows (1 element) and as the array grows
    (chain of one), judged by check_gradient on drawn cases of Sin, Tanh and Cos; and as
    the number of inputs grows, judged by the graph properties' check_graph_gradient
    (jointly and along each input alone: one more judgement per input).

    Localization: a wrong Sin (wrong by 1e-8 at every element) fails every example, and
    the fail is bisected down to one element; its cost over the passing check's shows
    how localization grows with the elements (O(log n) re-judgings of O(n) each).
    """
    rows = {"chain": [], "elements": [], "localization": [], "inputs": []}
    for length in (1, 2, 4, 8, 16):
        strategy = cases(
            target=TARGET, pool=POOL, min_length=length, max_length=length, shape=(1,)
        )
        drawn, _ = _draw(strategy, 40)
        seconds, judged = _per_example(check_gradient, drawn)
        rows["chain"].append({"chain": length, "ms_per_example": round(1e3 * seconds, 2),
                              "judged": judged, "drawn": len(drawn)})  # fmt: skip
    wrong_sin = FunctionRegistry([wrong.SinSlightlyOff]).specs()[0]
    for size in (1, 16, 256, 4096):
        drawn, _ = _draw(cases(target=TARGET, max_length=1, shape=(size,)), 20)
        seconds, judged = _per_example(check_gradient, drawn)
        rows["elements"].append({"elements": size, "ms_per_example": round(1e3 * seconds, 2),
                                 "judged": judged, "drawn": len(drawn)})  # fmt: skip
        failing, _ = _draw(cases(target=wrong_sin, max_length=1, shape=(size,)), 10)
        start = time.process_time()
        for case in failing:
            _fails(case)
        fail_s = (time.process_time() - start) / len(failing)
        rows["localization"].append({
            "elements": size, "ms_per_failing_example": round(1e3 * fail_s, 2),
            "over_passing": round(fail_s / seconds, 1),
            "log2_elements": int(np.log2(size)),
        })  # fmt: skip
    for count in (1, 2, 4, 8, 16):
        spec = FunctionRegistry().add(_sin_of_sum(count))
        drawn, _ = _draw(graph_cases(target=spec), 40)
        seconds, judged = _per_example(check_graph_gradient, drawn)
        rows["inputs"].append({"inputs": count, "ms_per_example": round(1e3 * seconds, 2),
                               "judged": judged, "drawn": len(drawn)})  # fmt: skip
    return rows


def _sin_of_sum(count):
    """A Function of `count` inputs of 4 elements each, sin(x0 + x1 + ...), in the tiny engine
    of examples/tiny_engine.py (the stage-1 engine takes one input)."""
    engine = make_engine()
    adapters.register(engine.adapter)

    class SinOfSum(engine.Function):
        fuzz_spec = {"inputs": count, "shapes": lambda draw: ((4,),) * count}  # noqa: RUF012

        def forward(self, *xs):
            return np.sin(sum(xs))

        def backward(self, gy):
            g = np.cos(sum(x.data for x in self.inputs)) * gy
            return tuple(g for _ in range(count))

    return SinOfSum


def _fails(case):
    try:
        check_gradient(case)
    except (Finding, UnsatisfiedAssumption):
        return


def isolation(rounds=3):
    """Wall time of the main job (correct.py and wrong.py, ci profile) isolated in one
    xdist worker with the watchdog (the default), isolated without the watchdog and the
    per-test limit (--timeout=0), and in one process (-n 0): the median of `rounds`
    rounds, the three ways taking turns, since one run of each differs by 10% from the
    next on the same machine."""
    ways = {"isolated": [], "isolated_no_watchdog": ["--timeout=0"], "n0": ["-n", "0"]}
    seen = {name: ([], []) for name in ways}
    for _ in range(rounds):
        for name, args in ways.items():
            with tempfile.TemporaryDirectory() as out:
                start, cpu = time.perf_counter(), _children_cpu()
                subprocess.run(
                    [sys.executable, "-m", "pytest", "properties", "-q", "-p", "no:cacheprovider",
                     "--hypothesis-profile=ci", f"--report-dir={out}/reports",
                     "--fuzz", "examples/correct.py", "--fuzz", "examples/wrong.py", *args],
                    cwd=REPO, check=False, capture_output=True,
                )  # fmt: skip
                seen[name][0].append(round(time.perf_counter() - start, 1))
                seen[name][1].append(round(_children_cpu() - cpu, 1))
    result = {"rounds": rounds}
    for name, (walls, cpus) in seen.items():
        result[f"{name}_runs_s"], result[f"{name}_runs_cpu_s"] = walls, cpus
        result[f"{name}_s"] = statistics.median(walls)
        result[f"{name}_cpu_s"] = statistics.median(cpus)
    base = result["n0_s"]
    result["isolation_overhead"] = round(result["isolated_s"] / base - 1, 3)
    result["isolation_overhead_cpu"] = round(result["isolated_cpu_s"] / result["n0_cpu_s"] - 1, 3)
    result["watchdog_overhead"] = round(
        result["isolated_s"] / result["isolated_no_watchdog_s"] - 1, 3
    )
    return result


def replays():
    """Report-time replays of examples/hostile.py's findings (plain command, ci, default
    --fuzz-timeout): wall and CPU seconds of replay.verify on the findings of a process
    that ended or hung, and on the others (without their earlier calls)."""
    hostile = os.path.join(REPO, "examples", "hostile.py")
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [sys.executable, "-m", "pytest", "properties", "-q", "-p", "no:cacheprovider",
             "--hypothesis-profile=ci", f"--report-dir={out}/reports", "--fuzz", hostile],
            cwd=REPO, check=False, capture_output=True,
        )  # fmt: skip
        with open(os.path.join(out, "reports", "report.json"), encoding="utf-8") as text:
            found = json.load(text)["counterexamples"]
    sources = {f["function"]: (hostile, f["function"]) for f in found}
    result = {}
    for name, dies in (("process_kinds", True), ("others", False)):
        chosen = [dict(f) for f in found if (f["kind"] in replay.PROCESS_KINDS) is dies]
        start, cpu = time.perf_counter(), _children_cpu()
        replay.verify(chosen, sources)
        result[f"{name}_s"] = round(time.perf_counter() - start, 1)
        result[f"{name}_cpu_s"] = round(_children_cpu() - cpu, 1)
        result[name] = sorted(f"{f['function']}: {f['reproduced']}" for f in chosen)
    return result


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
        with tempfile.TemporaryDirectory() as out:
            env = dict(os.environ, HYPOTHESIS_PROFILE="ci", COVERAGE_FILE=f"{out}/.coverage")
            start, cpu = time.perf_counter(), _children_cpu()
            done = subprocess.run(
                [sys.executable, "-m", "coverage", "run", "-m", "pytest", "-q", "-rf", "-n",
                 workers, "-p", "no:warnings", "--hypothesis-profile=ci",
                 f"--report-dir={out}/reports", "properties", "tests"],
                cwd=REPO, env=env, check=False, capture_output=True, text=True,
            )  # fmt: skip
            result[f"n{workers}_s"] = round(time.perf_counter() - start, 1)
            result[f"n{workers}_cpu_s"] = round(_children_cpu() - cpu, 1)
            result[f"n{workers}_exit"] = done.returncode
            lines = done.stdout.strip().splitlines()
            # The summary, and which tests failed: a failure here is worth naming.
            failed = [x for x in lines if x.startswith("FAILED")]
            result[f"n{workers}_summary"] = failed + lines[-1:]
    result["speedup"] = round(result["n0_s"] / result["n2_s"], 2)
    return result


def _children_cpu():
    """User and system CPU seconds of the finished child processes, all of them so far.

    On a shared machine wall time depends on the others' load; CPU time much less.
    """
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


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


def _throughput_md(rows):
    out = ["| chain | elements | bare ex/s | gradient ex/s | ratio | traversals ex/s | ratio "
           "| gradient check / one forward+backward |",
           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in rows:
        out.append(
            f"| {r['chain']} | {r['elements']} | {r['bare_per_s']} | {r['gradient_per_s']} | "
            f"{r['gradient_ratio']} | {r['traversals_per_s']} | {r['traversals_ratio']} | "
            f"{r['check_over_pass']}x |"
        )
    return out


def _detection_md(d):
    out = [f"Detect and shrink, {len(d['bugs'])} bugs: median {d['median_s']:.2f} s, "
           f"worst {d['worst_s']:.2f} s", "", "| bug | property | seconds |",
           "| --- | --- | ---: |"]  # fmt: skip
    return out + [f"| {r['bug']} | {r['property']} | {r['seconds']} |" for r in d["bugs"]]


def _suite_md(w):
    return [f"Test suite (coverage run -m pytest properties tests): -n 2 {w['n2_s']} s "
            f"({w['n2_cpu_s']} CPU s, {w['n2_summary']}), -n 0 {w['n0_s']} s "
            f"({w['n0_cpu_s']} CPU s, {w['n0_summary']}), speed-up {w['speedup']}x"]  # fmt: skip


def _scaling_md(sc):
    out = ["CPU time per gradient example (check_gradient on drawn cases of Sin, Tanh, Cos):",
           "", "| chain (1 element) | CPU ms / example | judged of drawn |",
           "| ---: | ---: | ---: |"]  # fmt: skip
    out += [f"| {r['chain']} | {r['ms_per_example']} | {r['judged']}/{r['drawn']} |"
            for r in sc["chain"]]  # fmt: skip
    out += ["", "| elements (chain of 1) | CPU ms / example | judged of drawn "
            "| CPU ms / failing example (localized) | failing / passing | log2 elements |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r, loc in zip(sc["elements"], sc["localization"], strict=True):
        out.append(f"| {r['elements']} | {r['ms_per_example']} | {r['judged']}/{r['drawn']} | "
                   f"{loc['ms_per_failing_example']} | {loc['over_passing']}x | "
                   f"{loc['log2_elements']} |")  # fmt: skip
    out += ["", "CPU time per example of a Function of several inputs (sin of their sum, 4 "
            "elements each, check_graph_gradient):", "",
            "| inputs | CPU ms / example | judged of drawn |",
            "| ---: | ---: | ---: |"]  # fmt: skip
    out += [f"| {r['inputs']} | {r['ms_per_example']} | {r['judged']}/{r['drawn']} |"
            for r in sc.get("inputs", [])]  # fmt: skip
    return out


def _isolation_md(iso):
    runs = ", ".join(
        f"{name} {iso[f'{name}_runs_s']}" for name in ("isolated", "isolated_no_watchdog", "n0")
    )
    return [f"Main job (correct.py + wrong.py, ci), median of {iso.get('rounds', 1)} rounds: "
            f"isolated with watchdog {iso['isolated_s']} s, "
            f"isolated without watchdog {iso['isolated_no_watchdog_s']} s, -n 0 {iso['n0_s']} s "
            f"(CPU s: {iso['isolated_cpu_s']}, {iso['isolated_no_watchdog_cpu_s']}, "
            f"{iso['n0_cpu_s']}): isolation and watchdog cost "
            f"{100 * iso['isolation_overhead']:.1f}% of the wall time "
            f"({100 * iso['isolation_overhead_cpu']:.1f}% of the CPU time), the watchdog alone "
            f"{100 * iso['watchdog_overhead']:.1f}%; every run's wall s: {runs}"]  # fmt: skip


def _replays_md(r):
    return [f"Report-time replays of hostile.py's findings: {len(r['process_kinds'])} of "
            f"processes that ended or hung in {r['process_kinds_s']} s "
            f"({r['process_kinds_cpu_s']} CPU s), {len(r['others'])} others in "
            f"{r['others_s']} s ({r['others_cpu_s']} CPU s); reproduced: "
            + "; ".join(r["process_kinds"] + r["others"])]  # fmt: skip


def _depth_md(rows):
    out = ["| backward() depth | seconds | peak KiB |", "| ---: | ---: | ---: |"]
    return out + [f"| {r['functions']} | {r['seconds']} | {r['peak_kib']} |" for r in rows]


def _sensitivity_md(measured):
    return ["Sensitivity (x = caught):", "", sensitivity.table(measured)]


def _armed(measure):
    """`measure`, run with the time limit's alarm armed once, as the plugin arms it per
    test: unarmed, every guarded call would install the signal handler for itself."""

    def run():
        with guard.watch():
            return measure()

    return run


# Each part of the bench: what measures it, and how it prints. `tox -e bench -- out.json
# --parts=suite,isolation` runs some of them.
PARTS = {
    "throughput": (_armed(throughput), _throughput_md),
    "detection": (_armed(detection), _detection_md),
    "scaling": (_armed(scaling), _scaling_md),
    "depth": (lambda: depth(), _depth_md),
    "sensitivity": (_armed(sensitivity.measure), _sensitivity_md),
    "suite": (lambda: suite_wall_time(), _suite_md),
    "isolation": (lambda: isolation(), _isolation_md),
    "replays": (lambda: replays(), _replays_md),
}


def markdown(results):
    load = results["load_average_before"][0], results["load_average_after"][0]
    out = [f"Machine: {results['machine']}; load average before {load[0]:.1f}, after "
           f"{load[1]:.1f}"
           " (on a shared machine wall times depend on the others' load, CPU times less)"]
    for name, (_, show) in PARTS.items():
        if name in results:
            out += ["", *show(results[name])]
    return "\n".join(out)


def main(path, parts):
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}, {platform.platform()}",
        "load_average_before": os.getloadavg(),
    }
    for name in parts:
        results[name] = PARTS[name][0]()
    results["load_average_after"] = os.getloadavg()
    print(markdown(results))
    with open(path, "w") as out:
        json.dump(results, out, indent=2)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    chosen = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--parts=")]
    parts = chosen[0].split(",") if chosen else list(PARTS)
    if "--no-suite" in sys.argv:
        parts = [p for p in parts if p not in ("suite", "isolation")]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        sys.exit(f"--parts: unknown {', '.join(unknown)}; the parts are {', '.join(PARTS)}")
    main(args[0] if args else os.path.join(REPO, "bench", "results.json"), parts)
