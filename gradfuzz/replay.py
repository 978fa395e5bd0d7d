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
from gradfuzz import guard, targets
from gradfuzz.checks import CHECKS
from gradfuzz.dag import Call
from gradfuzz.findings import Finding, decode, encode
from gradfuzz.joint import GRAPH_CHECKS
from gradfuzz.registry import FunctionRegistry, default_registry
from strategies.arrays import valid_input
from strategies.cases import Case
from strategies.graphs import GraphCase


class _Specs:
    """Specs by name: the engine's own, or classes of the finding's sources, each built once."""

    def __init__(self, sources):
        self.sources = sources
        self._built = {s.name: s for s in default_registry().specs()}

    def __call__(self, names):
        for name in names:
            if name not in self._built:
                source, qualname = self.sources[name]
                [(cls, factory, _)] = targets.classes(f"{source}:{qualname}")
                self._built[name] = FunctionRegistry().add(cls, factory=factory)
        return [self._built[name] for name in names]


def _array(finding, key, default):
    value = finding.get(key)
    return decode(value) if isinstance(value, dict) and "hex" in value else default


# Exit codes of a replay.
STILL_FAILING, PASSES, REJECTED, NOT_STANDALONE = 1, 0, 2, 3
# Kinds found by a process's end or a hang: replayed in a child process, never at report time.
PROCESS_KINDS = {"exited", "crashed", "timeout", "interrupted", "leaked_thread"}


def child_limit(finding):
    """How long the child replay of a process kind may run: the watchdog's window."""
    return 4 * finding.get("time_limit", guard.DEFAULT_TIME_LIMIT) + 2


_RETURNED = "gradfuzz-replay-returned"


def encode_calls(calls):
    """Backward calls kept by guard.journal, as JSON-ready dicts for a finding's earlier_calls."""
    return [
        {"chain": chain, "input": encode(x), "upstream_grad": encode(gy), "traversal": traversal}
        for chain, x, gy, traversal in calls
    ]


def replay(finding, sources):
    """Run the finding's check on its exact case, after its earlier calls; print the outcome.

    Returns 1 while the check still finds a problem, 0 once it passes, 2 when
    the check rejects the input (a kink, or outside the domain), and 3 when it
    passes but the finding was not reproduced when it was reported either (the
    failure needed earlier calls that the report could not find), so a pass
    says nothing about a fix. A finding whose process ended or hung is replayed
    in a child process: its death, or a hang longer than the watchdog's window, is a failure.
    """
    if finding["kind"] in PROCESS_KINDS:
        return _in_child(finding, sources)
    faulthandler.dump_traceback_later(60, exit=True)
    if finding["property"] in GRAPH_CHECKS:
        return _replay_call(finding, sources)
    return _report(finding, *_outcome(finding, sources))


def _outcome(finding, sources):
    """(exit code, the Finding raised or None, the Verdict or None) of one replay."""
    specs = _Specs(sources)
    chain = specs(finding["chain"])
    print(f"replaying {finding['kind']} in {finding['function']}: {' -> '.join(finding['chain'])}")
    calls = finding.get("earlier_calls") or []
    if calls:
        print(f"first the {len(calls)} earlier backward call(s) the failure needs")
    for call in calls:
        try:
            graph = chains.build(specs(call["chain"]), decode(call["input"]))
            chains.backprop(graph, decode(call["upstream_grad"]), traversal=call["traversal"])
        except (Finding, UnsatisfiedAssumption):
            pass  # only the state these calls leave behind matters
    try:
        x = _array(finding, "input", None)
        if x is None:
            found = valid_input(chain, np.zeros(()))
            if found is None:
                print("still no valid input: forward is not finite at any anchor point")
                return STILL_FAILING, None, None
            x = found[0]
        shape = chains.build(chain, x).y.data.shape
        gy = _array(finding, "upstream_grad", np.full(shape, 1.5))
        d = _array(finding, "direction", np.ones_like(x))
        verdict = CHECKS[finding["property"]](Case(finding["function"], tuple(chain), x, gy, d))
    except Finding as f:
        return STILL_FAILING, f, None
    except UnsatisfiedAssumption:
        return REJECTED, None, None
    return PASSES, None, verdict


def _report(finding, code, found, verdict):
    if found is not None:
        print(f"still failing: {found.summary()}")
        for key in ("analytic", "numerical", "abs_error", "tolerance"):
            if key in found.numbers:
                print(f"  {key:>9} = {found.numbers[key]!r}")
        return code
    if code == REJECTED:
        print("the check rejects this input now (a kink, overflow or the domain's edge)")
        return code
    if code != PASSES:
        return code
    if verdict is not None:
        print(f"  analytic  = {verdict.analytic!r}\n  numerical = {verdict.numerical!r}")
        print(f"  tolerance = {verdict.tolerance!r}")
    if finding.get("reproduced") is False:
        print(
            "could not be reproduced standalone: the failure needs earlier calls in the same "
            "process (state kept between calls) that the report could not find, so this pass "
            "does not show a fix"
        )
        return NOT_STANDALONE
    print("passes: the bug is fixed")
    return PASSES


def _in_child(finding, sources):
    """Replay a finding that ended or hung its process in a child, and judge how it ended."""
    limit = child_limit(finding)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "gradfuzz.replay", "--child"],
            input=json.dumps({"finding": finding, "sources": sources}),
            capture_output=True,
            text=True,
            timeout=limit,
            cwd=os.getcwd(),
            # The repro script put gradfuzz on sys.path; the child needs it too.
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
    except subprocess.TimeoutExpired as e:
        print(_text(e.stdout), end="")
        print(f"still failing: the replay did not end within {limit:g} s; it was killed")
        return STILL_FAILING
    lines = done.stdout.splitlines()
    if lines and lines[-1].startswith(_RETURNED):
        print("\n".join(lines[:-1]))
        return int(lines[-1].split()[-1])
    print(done.stdout, end="")
    if done.returncode < 0:
        print(f"still failing: the replay's process died from signal {-done.returncode}")
    else:
        print(f"still failing: the replay's process ended with status {done.returncode}")
    return STILL_FAILING


def _text(output):
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def _replay_call(finding, sources):
    """`replay` for a graph property: the pickled Function instance on its exact inputs."""
    [spec] = _Specs(sources)(finding["chain"])
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


def verify(findings, sources, *, calls=None, timeout=60, workers=None):
    """Replay each finding in a fresh process; set its "reproduced" to True, False or None.

    A finding that passes alone is replayed again after the backward calls
    `calls(finding)` returns (those its Function made before, in the process
    that found it); the fewest of them that make it fail again are kept in its
    "earlier_calls". None where it was not replayed: findings of a process that
    ended or hung (that is the evidence, and a replay could hang) or a replay
    that outlived `timeout`.
    """

    def run(mode, given):
        try:
            return subprocess.run(
                [sys.executable, "-m", "gradfuzz.replay", mode],
                input=json.dumps(given),
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=os.getcwd(),
            )
        except subprocess.TimeoutExpired:
            return None

    def one(finding):
        if finding["kind"] in PROCESS_KINDS:
            return None
        done = run("--check", {"finding": finding, "sources": sources})
        if done is None or done.returncode not in (STILL_FAILING, PASSES):
            return None
        if done.returncode == STILL_FAILING:
            return True
        kept = encode_calls(calls(finding)) if calls is not None else []
        if kept:
            found = run("--minimize", {"finding": finding, "sources": sources, "calls": kept})
            needed = json.loads(found.stdout) if found and found.returncode == 0 else None
            if needed is not None:
                finding["earlier_calls"] = [kept[i] for i in needed]
                return True
        return False

    with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count() or 2) as pool:
        for finding, reproduced in zip(findings, pool.map(one, findings), strict=True):
            finding["reproduced"] = reproduced


def _fails_again(finding, sources):
    """True when replaying `finding` (with its earlier_calls) fails on the same Function."""
    code, found, _ = _outcome(finding, sources)
    return code == STILL_FAILING and (found is None or found.function == finding["function"])


def _forked(finding, sources, calls):
    """`_fails_again` in a forked child, so that the state it leaves dies with the child."""
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            faulthandler.dump_traceback_later(30, exit=True, file=sys.__stderr__)
            code = int(_fails_again({**finding, "earlier_calls": calls}, sources))
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 1


def minimize(finding, sources, calls, *, budget=64):
    """Indices of the fewest of `calls` after which `finding` fails again, or None.

    Each try runs in a forked child; the user's modules are imported in the
    child only, so every try starts from fresh module state. Tries each call
    alone first (most state is left by one call), then removes chunks.
    """
    if not _forked(finding, sources, calls):
        return None
    for i in reversed(range(len(calls))):
        if budget and _forked(finding, sources, [calls[i]]):
            return [i]
        budget -= 1
    kept, n = list(range(len(calls))), 2
    while len(kept) > 1 and budget > 0:
        chunk = -(-len(kept) // n)
        for start in range(0, len(kept), chunk):
            trial = kept[:start] + kept[start + chunk :]
            budget -= 1
            if _forked(finding, sources, [calls[i] for i in trial]):
                kept, n = trial, max(n - 1, 2)
                break
        else:
            if n >= len(kept):
                break
            n = min(len(kept), 2 * n)
    return kept


def main(mode):
    given = json.load(sys.stdin)
    sources = {k: tuple(v) for k, v in given["sources"].items()}
    if mode == "--child":  # a process kind's replay: say how it returned, if it does
        guard.configure(time_limit=given["finding"].get("time_limit", guard.DEFAULT_TIME_LIMIT))
        code = _report(given["finding"], *_outcome(given["finding"], sources))
        print(f"\n{_RETURNED} {code}", flush=True)
        return code
    real_stdout = sys.stdout
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115  # only the result matters here
    if mode == "--minimize":
        needed = minimize(given["finding"], sources, given["calls"])
        print(json.dumps(needed), file=real_stdout)
        return 0
    return _report(given["finding"], *_outcome(given["finding"], sources))


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "--check"
    status = main(mode)
    if mode == "--child":
        os._exit(status)  # a thread the Function left running must not keep the child alive
    sys.exit(status)
