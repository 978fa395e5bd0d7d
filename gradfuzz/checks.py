"""The checks each property test calls: they return quietly, reject the example, or raise a Finding.

They also run outside Hypothesis (the replay scripts): there, events, notes and
targets are skipped and a rejection raises `hypothesis.errors.UnsatisfiedAssumption`.
"""

import contextlib

import numpy as np
from hypothesis import event, note, target

from gradfuzz import graph as chains
from gradfuzz import oracle, strict
from gradfuzz.findings import Finding, Kind
from gradfuzz.guard import reject_example, tell
from gradfuzz.verdicts import Status, Verdict


@contextlib.contextmanager
def _about(case):
    """Attach the case's upstream gradient and direction to any Finding, for the replay."""
    try:
        yield
    except Finding as finding:
        finding.numbers.setdefault("upstream_grad", case.gy)
        finding.numbers.setdefault("direction", case.d)
        raise


def _nondeterministic(case, first, second):
    return Finding(
        Kind.NONDETERMINISTIC,
        case.target,
        "two backward() passes over fresh graphs of the same chain returned different bits",
        chain=case.names(),
        input=case.x,
        first_gradient=np.asarray(first, dtype=np.float64),
        second_gradient=np.asarray(second, dtype=np.float64),
    )


def _valid_graph(case, reuse=False):
    graph = (reuse and case.take_graph()) or chains.build(case.chain, case.x)
    if not graph.valid():
        reject_example("input outside the chain's domain")
    return graph


_settings = {"strict": True}


def configure(*, strict):
    """Turn the strict check (a precise oracle after the central difference passes) on or off."""
    _settings["strict"] = bool(strict)


def check_gradient(case):
    """Backprop's <g, p> matches the oracle's directional derivative within its own error.

    Judges along p = d (absolute steps, never large enough to alias a periodic
    function), then, unless that passed, along p = d * |x| for the elements with
    |x| < 1 (relative steps, for tiny inputs near a domain's edge). Rejects kinks
    and non-convergent differences with an event; raises a `gradient_mismatch`
    Finding when no scale passes and one fails. After a pass, the strict check
    judges again with a precise oracle (gradfuzz/strict.py). Returns the Verdict.
    """
    with _about(case):
        return _check_gradient(case)


def _check_gradient(case):
    graph = _valid_graph(case, reuse=True)
    g = np.asarray(chains.backprop(graph, case.gy), dtype=np.float64)
    grads = [v.grad for v in graph.variables]
    unit = np.ones_like(case.x)
    relative = np.where((case.x != 0) & (np.abs(case.x) < 1), np.abs(case.x), 1.0)
    judged = []
    for scale in [unit] + [relative] * (not np.array_equal(unit, relative)):
        p = case.d * scale
        analytic = float(np.sum(g * p))
        judge = oracle.Oracle(case.chain, case.x, p, case.gy, grads)
        floor = oracle.analytic_rounding(g, p, len(case.chain)) + judge.underflow()
        verdict = _judge(case, judge, analytic, floor, g)
        judged.append(verdict)
        if verdict.status == Status.PASS:
            break
    # A mismatch needs every step scale that could judge to agree, so a scale that
    # does not suit the function cannot raise a false alarm on its own.
    by_status = {}
    for v in judged:
        by_status.setdefault(v.status, v)
    verdict = by_status.get(Status.PASS) or by_status.get(Status.FAIL) or judged[0]
    if verdict.status == Status.REJECT:
        reject_example(verdict.reason)
    tell(event, f"gradient: {verdict.status} ({verdict.reason})")
    tell(
        note,
        f"analytic={float.hex(verdict.analytic)} numerical={float.hex(verdict.numerical)} "
        f"tolerance={float.hex(verdict.tolerance)} oracle={verdict.reason}",
    )
    tell(target, min(verdict.abs_error / verdict.tolerance, 1e6), label="error/tolerance")
    if verdict.status == Status.FAIL:
        raise Finding(
            Kind.GRADIENT_MISMATCH,
            case.target,
            f"<backward(gy), p> = {verdict.analytic:.17g} but the {verdict.reason} gives "
            f"{verdict.numerical:.17g} +- {verdict.tolerance:.3g}",
            chain=case.names(),
            input=case.x,
            upstream_grad=case.gy,
            direction=case.d,
            analytic=verdict.analytic,
            numerical=verdict.numerical,
            abs_error=verdict.abs_error,
            rel_error=verdict.rel_error,
            tolerance=verdict.tolerance,
            step=verdict.step,
            oracle=verdict.reason,
            classification="real mismatch",
        )
    return verdict


def _judge(case, judge, analytic, floor, g):
    """One step scale's verdict: complex step when it applies, else central differences."""
    depth = len(case.chain)
    estimate = strict.complex_estimate(judge, depth) if _settings["strict"] else None
    if estimate is not None:
        return _precise_verdict(case, judge, analytic, floor, g, estimate)
    verdict = oracle.compare(judge, analytic, floor)
    if verdict.status == Status.SUSPECT:
        verdict = oracle.diagnose(judge, analytic, floor)
    if verdict.status != Status.PASS or not _settings["strict"]:
        return verdict
    estimate = strict.richardson_estimate(judge, verdict)
    if estimate is None:
        tell(event, "strict: no precise oracle agrees with the central difference here")
        return verdict
    return _precise_verdict(case, judge, analytic, floor, g, estimate)


def _precise_verdict(case, judge, analytic, floor, g, estimate):
    """Judge against a precise Estimate; only a suspect pays for backward's own rounding."""
    tolerance = strict.tolerance(estimate, 0.0, floor)
    if abs(analytic - estimate.value) > tolerance:
        jitter = strict.analytic_jitter(case.chain, case.x, case.gy, judge.p, g)
        tolerance = strict.tolerance(estimate, jitter, floor)
    status = Status.PASS if abs(analytic - estimate.value) <= tolerance else Status.FAIL
    return Verdict(status, estimate.method, analytic, estimate.value, tolerance, 0.0)


def check_traversals(case):
    """backward() and backward_recursive() give bit-identical gradients on fresh graphs."""
    with _about(case):
        loop = chains.backprop(_valid_graph(case, reuse=True), case.gy, "backward")
        recursive = chains.backprop(_valid_graph(case), case.gy, "backward_recursive")
        if chains.same(loop, recursive):
            return
        again = chains.backprop(_valid_graph(case), case.gy, "backward")
        if not chains.same(loop, again) or not chains.same(
            recursive, chains.backprop(_valid_graph(case), case.gy, "backward_recursive")
        ):
            raise _nondeterministic(case, loop, again)
        raise Finding(
            Kind.TRAVERSAL_MISMATCH,
            case.target,
            "backward() and backward_recursive() returned different gradients",
            chain=case.names(),
            input=case.x,
            first_gradient=np.asarray(loop, dtype=np.float64),
            second_gradient=np.asarray(recursive, dtype=np.float64),
        )


def check_invariants(case):
    """Engine invariants: outputs are Variables holding ndarrays; inputs are left unchanged;
    the gradient has the input's shape and a floating dtype; fresh graphs repeat bit for bit.

    The first four are checked by every forward and backward pass (chains.build and
    chains.backprop); this check adds the repetition.
    """
    with _about(case):
        g1 = chains.backprop(_valid_graph(case, reuse=True), case.gy)
        g2 = chains.backprop(_valid_graph(case), case.gy)
        if not chains.same(g1, g2):
            raise _nondeterministic(case, g1, g2)


# The property each test checks, by name; the replay scripts look checks up here.
CHECKS = {
    "gradient": check_gradient,
    "gradient_of_chains": check_gradient,
    "traversals_agree": check_traversals,
    "invariants_hold": check_invariants,
}
