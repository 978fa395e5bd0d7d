"""Replaying one finding outside Hypothesis: the engine of the repro_<id>.py scripts."""

import concurrent.futures
import faulthandler
import json
import os
import pickle
import subprocess
import sys

import numpy as np
from hypothesis.errors import UnsatisfiedAssumption

from gradfuzz import graph as chains
from gradfuzz import targets
from gradfuzz.checks import CHECKS
from gradfuzz.dag import Call
from gradfuzz.findings import Finding, decode
from gradfuzz.joint import GRAPH_CHECKS
from gradfuzz.registry import FunctionRegistry, default_registry
from strategies.arrays import valid_input
from strategies.cases import Case
from strategies.graphs import GraphCase


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


# Exit codes of a replay.
STILL_FAILING, PASSES, REJECTED, NOT_STANDALONE = 1, 0, 2, 3
# Kinds found by a worker's death: no input to replay, and a replay could hang for long.
PROCESS_KINDS = {"exited", "crashed", "timeout", "interrupted", "leaked_thread"}


def replay(finding, sources):
    """Run the finding's check on its exact case; print the outcome.

    Returns 1 while the check still finds a problem, 0 once it passes, 2 when
    the check rejects the input (a kink, or outside the domain), and 3 when it
    passes but the finding was not reproduced standalone when it was reported
    either (the failure needed earlier calls: state kept between calls), so a
    pass says nothing about a fix. A hang ends after 60 s with status 1.
    """
    faulthandler.dump_traceback_later(60, exit=True)
    if finding["property"] in GRAPH_CHECKS:
        return _replay_call(finding, sources)
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
    if finding.get("reproduced") is False:
        print(
            "could not be reproduced standalone: the failure needs earlier calls in the same "
            "process (state kept between calls), so this pass does not show a fix"
        )
        return NOT_STANDALONE
    print("passes: the bug is fixed")
    return PASSES


def _replay_call(finding, sources):
    """`replay` for a graph property: the pickled Function instance on its exact inputs."""
    [spec] = _specs(finding["chain"], sources)
    print(f"replaying {finding['kind']} in {finding['function']}({finding.get('parameters', {})})")
    if finding.get("instance") is None or "inputs" not in finding:
        print("cannot replay: the Function instance could not be pickled when it was found")
        return REJECTED
    try:
        call = Call(
            spec,
            pickle.loads(bytes.fromhex(finding["instance"])),
            [decode(a) for a in finding["inputs"]],
            finding.get("differentiated"),
            finding.get("program"),
        )
        chain = (call.packed_spec(),)
        x = call.pack()
        gy = _array(finding, "upstream_grad", None)
        d = _array(finding, "direction", np.ones_like(x))
        if gy is None:
            gy = np.full(chains.build(chain, x).y.data.shape, 1.5)
        verdict = GRAPH_CHECKS[finding["property"]](GraphCase(spec.name, call, chain, x, gy, d))
    except Finding as f:
        print(f"still failing: {f.summary()}")
        return STILL_FAILING
    except UnsatisfiedAssumption:
        print("the check rejects this input now (a kink, overflow or the domain's edge)")
        return REJECTED
    print(f"  analytic  = {verdict.analytic!r}\n  numerical = {verdict.numerical!r}")
    print("passes: the bug is fixed")
    return PASSES


def verify(findings, sources, *, timeout=60, workers=None):
    """Replay each finding in a fresh process; set its "reproduced" to True, False or None.

    None where it was not replayed: findings of a dead worker (its death is the
    evidence, and a replay could hang) or a replay that outlived `timeout`.
    """

    def one(finding):
        if finding["kind"] in PROCESS_KINDS:
            return None
        try:
            done = subprocess.run(
                [sys.executable, "-m", "gradfuzz.replay"],
                input=json.dumps({"finding": finding, "sources": sources}),
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=os.getcwd(),
            )
        except subprocess.TimeoutExpired:
            return None
        return {STILL_FAILING: True, PASSES: False}.get(done.returncode)

    with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count() or 2) as pool:
        for finding, reproduced in zip(findings, pool.map(one, findings), strict=True):
            finding["reproduced"] = reproduced


if __name__ == "__main__":
    given = json.load(sys.stdin)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115  # only the exit status matters here
    sys.exit(replay(given["finding"], {k: tuple(v) for k, v in given["sources"].items()}))
