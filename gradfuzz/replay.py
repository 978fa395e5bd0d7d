"""Replaying one finding outside Hypothesis: the engine of the repro_<id>.py scripts."""

import concurrent.futures
import faulthandler
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time

import numpy as np
from hypothesis.errors import UnsatisfiedAssumption

from gradfuzz import graph as chains
from gradfuzz import guard, report, targets
from gradfuzz.checks import CHECKS
from gradfuzz.dag import Call, SecondCall
from gradfuzz.findings import Finding, Kind, decode, encode
from gradfuzz.joint import GRAPH_CHECKS
from gradfuzz.registry import FunctionRegistry, default_registry
from strategies.arrays import valid_input
from strategies.cases import Case
from strategies.graphs import GraphCase


class _Specs:
    """Specs by name: classes of the finding's sources, else the engine's own; each built once.

    A source wins over the engine's class of the same name (a user's own Square), as
    it does in the run that found it.
    """

    def __init__(self, sources):
        self.sources = sources
        self._built = {s.name: s for s in default_registry().specs() if s.name not in sources}

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
# Kinds found by a process's end or a hang: a replay of one may end or hang its process too.
PROCESS_KINDS = {"exited", "crashed", "timeout", "interrupted", "leaked_thread"}
# How long a child replay may take to start and finish before it is given up as not judged.
BACKSTOP_S = 60


def child_limit(finding):
    """How long the replayed calls of a process kind may run: the watchdog's window."""
    return 4 * finding.get("time_limit", guard.DEFAULT_TIME_LIMIT) + 2


def failure(finding, code, found, verdict):
    """(function, kind) of the failure a replay of `finding` saw, or None if it saw none."""
    if found is not None:
        return found.function, str(found.kind)
    if verdict is not None and getattr(verdict, "imprecise", None) is not None:
        return finding["function"], str(Kind.IMPRECISE_GRADIENT)
    return None


def reproduces(finding, seen):
    """The one rule for "reproduced": the replay failed on the same Function, in the same kind.

    `seen` is `failure`'s (function, kind). A nondeterministic finding also
    counts its symptoms (a mismatch), which the report relabels as nondeterministic.
    """
    if seen is None or seen[0] != finding["function"]:
        return False
    if finding["kind"] == Kind.NONDETERMINISTIC:
        return seen[1] in {Kind.NONDETERMINISTIC, *report.SYMPTOMS_OF_NOISE}
    return seen[1] == finding["kind"]


_RETURNED = "gradfuzz-replay-returned"


def encode_calls(calls):
    """Backward calls kept by guard.journal, as JSON-ready dicts for a finding's earlier_calls."""
    return [
        {"chain": chain, "input": encode(x), "upstream_grad": encode(gy), "traversal": traversal}
        for chain, x, gy, traversal in calls
    ]


def replay(finding, sources):
    """Run the finding's check on its exact case, after its earlier calls; print the outcome.

    Returns 1 while the check still finds a problem (an imprecise_gradient note:
    while backward is still imprecise), 0 once it passes, 2 when the check
    rejects the input (a kink, or outside the domain) or the replay cannot run,
    and 3 when it passes but the finding was not reproduced when it was
    reported either (`reproduced` false), so a pass says nothing about a fix. A
    finding whose process ended or hung is replayed in a child process: its
    death, or a hang longer than the watchdog's window, is a failure.
    """
    if finding["kind"] in PROCESS_KINDS:
        return _in_child(finding, sources)
    faulthandler.dump_traceback_later(BACKSTOP_S, exit=True)
    return _report(finding, *_outcome(finding, sources))


def _outcome(finding, sources):
    """(exit code, the Finding raised or None, the Verdict or None) of one replay."""
    if finding["property"] in GRAPH_CHECKS:
        return _outcome_of_call(finding, sources)
    return _outcome_of_chain(finding, sources)


def _outcome_of_chain(finding, sources):
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
                explanation = "still no valid input: forward is not finite at any anchor point"
                return STILL_FAILING, _no_input(finding, explanation), None
            x = found[0]
        shape = chains.build(chain, x).y.data.shape
        gy = _array(finding, "upstream_grad", np.full(shape, 1.5))
        d = _array(finding, "direction", np.ones_like(x))
        verdict = CHECKS[finding["property"]](Case(finding["function"], tuple(chain), x, gy, d))
    except Finding as f:
        return STILL_FAILING, f, None
    except UnsatisfiedAssumption:
        return _rejected()
    return PASSES, None, verdict


def _rejected():
    print("the check rejects this input now (a kink, overflow or the domain's edge)")
    return REJECTED, None, None


def _no_input(finding, explanation):
    return Finding(Kind.NO_VALID_INPUT, finding["function"], explanation, chain=finding["chain"])


def _report(finding, code, found, verdict):
    """Print one replay's outcome; return its exit code."""
    seen = failure(finding, code, found, verdict)
    if found is not None:
        print(f"still failing: {found.summary()}")
        for key in ("analytic", "numerical", "abs_error", "tolerance"):
            if key in found.numbers:
                print(f"  {key:>9} = {found.numbers[key]!r}")
        if not reproduces(finding, seen):
            was = f"{finding['kind']} in {finding['function']}"
            print(f"  (a failure other than the finding's own, {was})")
        return code
    if code != PASSES:
        return code
    if verdict is not None:
        print(f"  analytic  = {verdict.analytic!r}\n  numerical = {verdict.numerical!r}")
        print(f"  tolerance = {verdict.tolerance!r}")
    if seen is not None and reproduces(finding, seen):
        print(f"still imprecise: backward lost {verdict.imprecise:.1f} digits to its own rounding")
        return STILL_FAILING
    if finding.get("reproduced") is False:
        print(
            "could not be reproduced standalone: when the report was written, a fresh process "
            "replaying it (after the earlier calls kept, if any) did not fail this way either; "
            "it may need state from calls the report could not find, so this pass does not "
            "show a fix"
        )
        return NOT_STANDALONE
    print("passes: the bug is fixed")
    return PASSES


def _in_child(finding, sources):
    """Replay a finding that ended or hung its process in a child, and judge how it ended."""
    code, _, text = run_child(finding, sources)
    print(text, end="")
    if code is None:
        print(f"not judged: the replay did not even start within {BACKSTOP_S} s; it was killed")
        return REJECTED
    return code


def run_child(finding, sources, backstop=BACKSTOP_S):
    """Replay `finding` in a fresh process: (exit code, `failure`'s (function, kind), its text).

    The child prints its outcome; a process kind's child also arms a watchdog of
    `child_limit` seconds for the replayed calls. A child that dies is judged by
    how: its watchdog firing is a timeout, a signal a crash, any other end an
    exit, all against the finding's Function. A child still running after
    `backstop` seconds is killed and the exit code is None: not judged.
    """
    function = finding["function"]
    with tempfile.NamedTemporaryFile("r", prefix="gradfuzz-watchdog-") as dump:
        given = {"finding": finding, "sources": sources, "watchdog": dump.name}
        try:
            done = subprocess.run(
                [sys.executable, "-m", "gradfuzz.replay", "--child"],
                input=json.dumps(given),
                capture_output=True,
                text=True,
                timeout=backstop,
                cwd=os.getcwd(),
                # The repro script put gradfuzz on sys.path; the child needs it too.
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            )
        except subprocess.TimeoutExpired as e:
            return None, None, _text(e.stdout)
        stuck = dump.read()
    lines = done.stdout.splitlines()
    if lines and lines[-1].startswith(_RETURNED):
        said = json.loads(lines[-1].removeprefix(_RETURNED))
        seen = tuple(said["seen"]) if said["seen"] is not None else None
        return said["code"], seen, "\n".join(lines[:-1]) + "\n"
    if stuck:
        why = (
            f"still failing: the replayed calls did not return within {child_limit(finding):g} s "
            f"(the watchdog's window); the stack where it stopped:\n{stuck}"
        )
        return STILL_FAILING, (function, str(Kind.TIMEOUT)), done.stdout + why
    if done.returncode < 0:
        why = f"still failing: the replay's process died from signal {-done.returncode}\n"
        return STILL_FAILING, (function, str(Kind.CRASHED)), done.stdout + why
    why = f"still failing: the replay's process ended with status {done.returncode}\n"
    return STILL_FAILING, (function, str(Kind.EXITED)), done.stdout + done.stderr + why


def _text(output):
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def _outcome_of_call(finding, sources):
    """`_outcome` for a graph property: the pickled Function instance on its exact inputs."""
    [spec] = _Specs(sources)(finding["chain"])
    print(f"replaying {finding['kind']} in {finding['function']}({finding.get('parameters', {})})")
    if finding.get("instance") is None or "inputs" not in finding:
        print("cannot replay: the Function instance could not be pickled when it was found")
        return REJECTED, None, None
    try:
        call = Call(
            spec,
            pickle.loads(bytes.fromhex(finding["instance"])),
            [decode(a) for a in finding["inputs"]],
            finding.get("differentiated"),
            finding.get("program"),
        )
        if finding["property"] == "gradient_of_gradients":  # s(z) = <backward(z) for gy, v>
            v = _array(finding, "second_direction", None)
            if v is None:
                print("cannot replay: the finding lacks the second derivative's gy and v")
                return REJECTED, None, None
            call = SecondCall(call, _array(finding, "first_upstream_grad", None), v)
        chain = (call.packed_spec(),)
        x = call.pack()
        gy = _array(finding, "upstream_grad", None)
        d = _array(finding, "direction", np.ones_like(x))
        if gy is None:
            gy = np.full(chains.build(chain, x).y.data.shape, 1.5)
        verdict = GRAPH_CHECKS[finding["property"]](GraphCase(spec.name, call, chain, x, gy, d))
    except Finding as f:
        return STILL_FAILING, f, None
    except UnsatisfiedAssumption:
        return _rejected()
    return PASSES, None, verdict


def verify(findings, sources, *, calls=None, timeout=BACKSTOP_S, workers=None):
    """Replay each finding in a fresh process; set its "reproduced" to True, False or None.

    True when the replay fails on the same Function in the same kind
    (`reproduces`). A finding that does not is replayed again after the
    backward calls `calls(finding)` returns (those its Function made before, in
    the process that found it); the fewest of them after which it is reproduced
    are kept in its "earlier_calls". A finding of a process that ended or hung
    is replayed under a watchdog of `child_limit` seconds, and the replay's own
    death or hang is its failure. None where it was not judged: the check
    rejects the input now, a replay outlived `timeout` seconds, or a process
    kind's replay would start after the `timeout` seconds all of them share.
    """
    deadline = time.monotonic() + timeout

    def one(finding):
        dies = finding["kind"] in PROCESS_KINDS
        if dies and time.monotonic() > deadline:
            return None
        code, seen, _ = run_child(finding, sources, timeout)
        if reproduces(finding, seen):
            return True
        if code not in (STILL_FAILING, PASSES):
            return None
        kept = encode_calls(calls(finding)) if calls is not None and not dies else []
        if kept:
            given = {"finding": finding, "sources": sources, "calls": kept}
            try:
                found = subprocess.run(
                    [sys.executable, "-m", "gradfuzz.replay", "--minimize"],
                    input=json.dumps(given),
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    cwd=os.getcwd(),
                )
            except subprocess.TimeoutExpired:
                found = None
            needed = json.loads(found.stdout) if found and found.returncode == 0 else None
            if needed is not None:
                finding["earlier_calls"] = [kept[i] for i in needed]
                return True
        return False

    # The process kinds first, so that their shared time is not spent waiting on the others.
    order = sorted(range(len(findings)), key=lambda i: findings[i]["kind"] not in PROCESS_KINDS)
    with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count() or 2) as pool:
        done = dict(zip(order, pool.map(one, [findings[i] for i in order]), strict=True))
    for i, finding in enumerate(findings):
        finding["reproduced"] = done[i]


def _fails_again(finding, sources):
    """True when replaying `finding` (with its earlier_calls) reproduces it (`reproduces`)."""
    return reproduces(finding, failure(finding, *_outcome(finding, sources)))


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
    finding = given["finding"]
    if mode == "--child":  # one replay in a fresh process: say how it returned, if it does
        guard.configure(time_limit=finding.get("time_limit", guard.DEFAULT_TIME_LIMIT))
        if finding["kind"] in PROCESS_KINDS:  # its hang is its failure: end it, say where
            dump = open(given["watchdog"], "w")  # noqa: SIM115  # open until the process ends
            faulthandler.dump_traceback_later(child_limit(finding), exit=True, file=dump)
        outcome = _outcome(finding, sources)
        code = _report(finding, *outcome)
        said = {"code": code, "seen": failure(finding, *outcome)}
        print(f"\n{_RETURNED}{json.dumps(said)}", flush=True)
        return code
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115  # only the result matters here
    needed = minimize(finding, sources, given["calls"])
    print(json.dumps(needed), file=sys.__stdout__)
    return 0


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "--child"
    status = main(mode)
    if mode == "--child":
        sys.stdout.flush()
        os._exit(status)  # a thread the Function left running must not keep the child alive
    sys.exit(status)
