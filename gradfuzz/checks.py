"""The checks the property tests call: each returns, rejects the example, or raises a Finding.

Every gradient example ends in one of three verdicts: pass and fail are
judgements; an example the oracle cannot judge is rejected with its reason (a
Hypothesis event and a tally) and is never evidence. The checks also run outside
Hypothesis (the replay scripts): there, events, notes and targets are skipped and
a rejection raises `hypothesis.errors.UnsatisfiedAssumption`.
"""

import contextlib

import numpy as np
from hypothesis import event, note, target

from gradfuzz import graph as chains
from gradfuzz import holomorphic, oracle, strict
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


def _valid_graph(case, reuse=False):
    graph = (reuse and case.take_graph()) or chains.build(case.chain, case.x)
    if not graph.valid():
        reject_example("input outside the chain's domain")
    return graph


def step_scales(x):
    """The per-element step scales tried in turn: max(|x|, 1), then |x| for 0 < |x| < 1.

    Relative steps for huge elements, so that no step rounds away; relative steps
    for tiny ones too where absolute steps leave the domain.
    """
    scales = [np.maximum(np.abs(x), 1.0)]
    small = (x != 0) & (np.abs(x) < 1)
    if small.any():
        scales.append(np.where(small, np.abs(x), 1.0))
    return scales


def check_gradient(case, *, strict=True):
    """Backprop's <g, q> matches the oracle's directional derivative within the oracle's error.

    `strict` (default True) judges a pass again with the precise oracles
    (complex step, Richardson); --no-strict turns them off.

    q = d * scale for the scales of `step_scales`, tried in turn until one can judge.
    A fail is localized by bisection to the smallest block of elements that still
    fails, and raises a `gradient_mismatch` Finding naming them; a mismatch that no
    block reproduces, like every example the oracle cannot judge, is rejected.
    Returns the passing Verdict.
    """
    with _about(case):
        verdict = judge_gradient(case, strict=strict)
        if verdict.status == Status.REJECT:
            reject_example(verdict.reason)
        tell(event, f"gradient: {verdict.status} ({verdict.reason})")
        tell(
            note,
            f"analytic={float.hex(verdict.analytic)} numerical={float.hex(verdict.numerical)} "
            f"tolerance={float.hex(verdict.tolerance)} oracle={verdict.reason}",
        )
        ratio = verdict.abs_error / verdict.tolerance if verdict.tolerance > 0 else 0.0
        if np.isfinite(ratio):
            tell(target, min(ratio, 1e6), label="error/tolerance")
        if verdict.status == Status.FAIL:
            raise mismatch(case, verdict)
        return verdict


def judge_gradient(case, *, strict=True):
    """The localized Verdict of check_gradient on `case`: pass, fail or reject, never raised.

    Findings about the Functions themselves (a raise, a hang, a bad gradient) still raise.
    """
    graph = case.take_graph() or chains.build(case.chain, case.x)
    if not graph.valid():
        return Verdict(Status.REJECT, "input outside the chain's domain", *[np.nan] * 4)
    judge = _Judge(case, graph.y.data, strict)
    # The oracle decides first whether it can judge, from forward alone.
    tried = []
    for s in step_scales(case.x):
        probe = judge.probe(case.d * s)
        tried.append(judge.estimate(probe))
        if isinstance(tried[-1], oracle.Estimate):
            break
        if tried[-1].reason == oracle.SWAMPED:  # the later scales' steps are no larger
            return Verdict(Status.REJECT, oracle.SWAMPED, *[np.nan] * 4)
    else:
        return Verdict(Status.REJECT, tried[0].reason, *[np.nan] * 4)
    judge.g = np.asarray(chains.backprop(graph, case.gy), dtype=np.float64)
    verdict = judge.verdict(probe, tried[-1])
    if verdict.status == Status.FAIL or verdict.reason == NO_DIGIT:
        # Backward's rounding floor is summed over the array: a part of it may judge.
        verdict = judge.localize(probe.q, verdict)
    return verdict


class _Judge:
    """Judges one case along directions q: the oracle first, then backward's <g, q>."""

    def __init__(self, case, y0, strict=True):
        self.case, self.y0, self.g = case, y0, None
        self.strict = strict
        self._jitter = {}  # the noise probe's passes at x, the same along every q

    def probe(self, q):
        return oracle.Probe(self.case.chain, self.case.x, q, self.case.gy, self.y0, self._jitter)

    def estimate(self, probe):
        """The forward-only Estimate along probe.q if it has a significant digit, else Unjudged."""
        found = oracle.estimate(probe)
        if isinstance(found, oracle.Estimate) and not found.significant:
            return oracle.Unjudged("no significant digit")
        return found

    def verdict(self, probe, cheap=None):
        """Pass or fail of backward's <g, q> against the oracle along probe.q, or a rejection."""
        found = cheap if cheap is not None else self.estimate(probe)
        if isinstance(found, oracle.Unjudged):
            return Verdict(Status.REJECT, found.reason, np.nan, np.nan, np.nan, np.nan)
        with np.errstate(over="ignore"):  # a huge <g, q> is judged, not warned about
            analytic = float(np.sum(self.g * found.q))
        if self.strict and abs(analytic - found.value) <= _allowed(found):
            found, analytic = self._sharpen(probe, found, analytic)
        allowed = _allowed(found)
        status = Status.PASS if abs(analytic - found.value) <= allowed else Status.FAIL
        verdict = Verdict(status, found.method, analytic, found.value, allowed, found.step)
        verdict.q = np.asarray(found.q)
        if status == Status.FAIL:
            self._account_for_rounding(verdict, found)
        return verdict

    def _sharpen(self, probe, cheap, analytic):
        """A precise Estimate where one applies, and the analytic along its direction.

        The complex step may pass backward. It may fail backward only where forward
        is shown holomorphic by a trace (`holomorphic`): code that is not analytic
        (np.abs, a sign) drops terms from it that no step size reveals. Elsewhere a
        mismatch it sees is judged by Richardson, in real arithmetic, where that
        applies, and by the central difference `cheap` where it does not. When the
        two precise oracles contradict each other, Richardson judges.
        """
        depth = len(self.case.chain)
        precise = strict.complex_estimate(probe, cheap, depth)
        if precise is not None:
            along = float(np.sum(self.g * precise.q))
            if abs(along - precise.value) <= _allowed(precise):
                return precise, along
            precise = strict.complex_noise(probe, precise)
        if precise is not None:
            precise = strict.complex_wide(probe, precise)
            if abs(along - precise.value) <= _allowed(precise):
                return precise, along
            if precise.tolerance >= cheap.tolerance:
                precise = None  # no sharper than the central difference that passed
        other = strict.richardson_estimate(probe, cheap)
        if precise is not None and (
            other is None or abs(other.value - precise.value) <= other.tolerance + precise.tolerance
        ):
            z = probe.x + 1j * precise.step * probe.q
            if holomorphic.shown_holomorphic(self.case.chain, z):
                return precise, along
            tell(event, "strict: the complex step's forward is not shown holomorphic")
        if other is not None:
            return other, float(np.sum(self.g * other.q))
        tell(event, "strict: no precise oracle applies here")
        return cheap, analytic

    def _account_for_rounding(self, verdict, found):
        """Widen the tolerance by backward's own rounding, measured by a long double rerun.

        An injected error survives the rerun and still fails; digits lost to rounding
        move the rerun's result and pass, with an imprecise note when they are many.
        """
        verdict.detail = found.note
        rounding = strict.wide_rounding(
            self.case.chain, self.case.x, self.case.gy, found.q, verdict.analytic
        )
        if rounding.range == "underflow":
            # Gradual loss of range, amplified by later stages, is not the formula's error.
            verdict.status = Status.REJECT
            verdict.reason = "backward underflows in float64 here"
            return
        if rounding.range == "overflow":
            if abs(found.value) < SUBNORMAL * _units(found, self.case.gy):
                # A gradient near float64's smallest normal loses itself in any formula.
                verdict.status = Status.REJECT
                verdict.reason = "the true gradient is at float64's underflow edge"
                return
            verdict.detail = f"not rounding: {rounding.reason}"
            return
        allowed = _allowed(found)
        floor = _cancellation_floor(found, self.case.gy)
        measured = (
            rounding.wide is not None
            and rounding.wide != 0
            and rounding.amount <= 0.5 * abs(rounding.wide)
        )
        if measured:
            allowed += SAFETY_ON_ROUNDING * rounding.amount
        elif rounding.wide is None:
            allowed += floor  # unmeasured: a cancellation of order-1 terms is assumed
        if verdict.abs_error <= allowed:
            verdict.status, verdict.tolerance = Status.PASS, allowed
            verdict.detail = "within backward's own rounding"
            if measured and rounding.imprecise:
                verdict.imprecise = rounding.lost_digits
        elif rounding.wide is None:
            verdict.detail = _joined(
                verdict.detail, f"backward's own rounding not measured: {rounding.reason}"
            )
        elif (
            not measured
            and rounding.wide != 0
            and abs(rounding.wide - found.value) <= allowed + WIDE_GAIN * rounding.amount
        ):
            # float64 kept no digit of a formula that long double shows right.
            verdict.status = Status.PASS
            verdict.tolerance = allowed + WIDE_GAIN * rounding.amount
            verdict.detail = (
                f"float64 keeps no digit; a long double rerun gives {rounding.wide:.17g}, "
                "which the oracle confirms"
            )
            verdict.imprecise = rounding.lost_digits
        elif not measured and verdict.abs_error <= allowed + floor:
            # The rerun cancels as float64 does: neither keeps a digit of the gradient.
            verdict.status = Status.REJECT
            verdict.reason = NO_DIGIT
        elif not measured:
            verdict.detail = _joined(
                verdict.detail,
                f"float64 keeps no digit; a long double rerun gives {rounding.wide:.17g}",
            )
        else:
            verdict.detail = _joined(
                verdict.detail,
                f"rounding does not explain it: a long double rerun gives {rounding.wide:.17g}",
            )

    def localize(self, q, verdict):
        """The smallest block of elements along which backward still fails, by bisection."""
        block = np.flatnonzero(q)
        while block.size > 1:
            for half in np.array_split(block, 2):
                sub = np.zeros_like(q)
                sub.flat[half] = q.flat[half]
                found = self.verdict(self.probe(sub))
                if found.status == Status.FAIL:
                    block, verdict = half, found
                    break
            else:
                return Verdict(
                    Status.REJECT,
                    "a mismatch that no part of the array reproduces",
                    verdict.analytic,
                    verdict.numerical,
                    verdict.tolerance,
                    verdict.step,
                )
        if verdict.status == Status.FAIL:
            verdict.elements = [[int(j) for j in np.unravel_index(i, q.shape)] for i in block]
        return verdict


# Below this fraction of the summed terms, forward and backward may legitimately
# disagree: two correct formulas, a series cut off at float precision.
CONSISTENCY = 1e-11


def _joined(*notes):
    """The non-empty notes of a verdict's detail, in order."""
    return "; ".join(n for n in notes if n)


def _allowed(estimate):
    """How far backward may be from an Estimate: its tolerance and the consistency floor."""
    return estimate.tolerance + CONSISTENCY * estimate.scale


def _units(estimate, gy):
    """sum |gy| |q|, pairing elements where gy and q have one shape."""
    q = np.abs(estimate.q)
    with np.errstate(over="ignore"):
        units = np.abs(gy) * q if np.shape(gy) == np.shape(q) else np.sum(np.abs(gy)) * np.mean(q)
        return float(np.sum(units))


def _cancellation_floor(estimate, gy):
    """ULPS epsilons per unit of gy q: a derivative computed from terms of order 1 that
    cancel (1 - y*y, 0.5 tanh(x/2) + 0.5) is exact only to that, absolutely.

    It stands in for backward's rounding only where a long double rerun cannot measure
    it, and marks the errors that a rerun keeping no digit cannot judge.
    """
    return oracle.ULPS * oracle.EPS * _units(estimate, gy)


# Gradients below this, per unit of gy q, sit at float64's underflow edge.
SUBNORMAL = oracle.TINY * 2**10


# Where neither float64 nor the long double rerun keeps a digit of backward's result.
NO_DIGIT = "backward's rounding, measured in long double, leaves no digit"

# Where float64 keeps no digit, the long double rerun judges the formula: it must agree
# with the oracle within this fraction of float64's rounding (long double gains 2^-11,
# three bits of which are left to its own cancellation).
WIDE_GAIN = 2.0**-8

# Backward's measured rounding is one sample of it: a margin like the oracle's own.
SAFETY_ON_ROUNDING = 2


def mismatch(case, verdict):
    """The gradient_mismatch Finding for a failing Verdict on `case`."""
    where = ""
    if verdict.elements and case.x.size > 1:
        where = f" at element{'s' * (len(verdict.elements) != 1)} {verdict.elements}"
    return Finding(
        Kind.GRADIENT_MISMATCH,
        case.target,
        f"<backward(gy), q>{where} = {verdict.analytic:.17g} but the {verdict.reason} gives "
        f"{verdict.numerical:.17g} +- {verdict.tolerance:.3g}"
        + (f" ({verdict.detail})" if verdict.detail else ""),
        **_numbers(case, verdict),
        step=verdict.step,
        oracle=verdict.reason,
        elements=verdict.elements,
    )


def imprecise_finding(case, verdict):
    """The imprecise_gradient note for a passing Verdict whose analytic lost too many digits."""
    return Finding(
        Kind.IMPRECISE_GRADIENT,
        case.target,
        f"backward's <g, q> = {verdict.analytic:.17g} lost {verdict.imprecise:.1f} digits to "
        "its own rounding (measured by a long double rerun); the oracle gives "
        f"{verdict.numerical:.17g}",
        **_numbers(case, verdict),
        lost_digits=verdict.imprecise,
    )


def _numbers(case, verdict):
    """What a Finding about one gradient Verdict carries, for the report and the replay."""
    return {
        "chain": case.names(),
        "input": case.x,
        "upstream_grad": case.gy,
        "direction": case.d,
        # what <backward(gy), q> was taken along: the direction times the step scale, realized
        "q": verdict.q,
        "analytic": verdict.analytic,
        "numerical": verdict.numerical,
        "abs_error": verdict.abs_error,
        "rel_error": verdict.rel_error,
        "tolerance": verdict.tolerance,
    }


def _nondeterministic(case, kind, explanation, first, second):
    return Finding(
        kind,
        case.target,
        explanation,
        chain=case.names(),
        input=case.x,
        first_gradient=np.asarray(first, dtype=np.float64),
        second_gradient=np.asarray(second, dtype=np.float64),
    )


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
            raise _nondeterministic(
                case,
                Kind.NONDETERMINISTIC,
                "two backward() passes over fresh graphs of the same chain returned different bits",
                loop,
                again,
            )
        raise _nondeterministic(
            case,
            Kind.TRAVERSAL_MISMATCH,
            "backward() and backward_recursive() returned different gradients",
            loop,
            recursive,
        )


def check_invariants(case):
    """Engine invariants, and backward's independence from earlier calls.

    Outputs are Variables holding ndarrays, inputs are left unchanged, the gradient
    has the input's shape and a floating dtype (checked by every pass of
    chains.build and chains.backprop). Here: two fresh graphs give the same bits;
    backward run again on the same graph, and on two graphs built before either
    is backpropagated, gives those bits again; and no later call, at this input
    or another, changes a gradient an earlier call returned.
    """
    with _about(case):
        graph = _valid_graph(case, reuse=True)
        first = chains.backprop(graph, case.gy)
        kept = np.array(first, copy=True)
        fresh = chains.backprop(_valid_graph(case), case.gy)
        if not chains.same(kept, fresh):
            raise _nondeterministic(
                case,
                Kind.NONDETERMINISTIC,
                "two backward() passes over fresh graphs of the same chain returned different bits",
                kept,
                fresh,
            )
        elsewhere = _graph_elsewhere(case)
        if elsewhere is not None:  # a backward at another input must not touch `first`
            chains.backprop(elsewhere, case.gy)
            if not chains.same(kept, first):
                raise _nondeterministic(
                    case,
                    Kind.STATEFUL_BACKWARD,
                    "a backward at another input changed the gradient array an earlier "
                    "backward returned",
                    kept,
                    first,
                )
        again = chains.backprop(graph, case.gy)
        early, late = _valid_graph(case), _valid_graph(case)
        interleaved = [chains.backprop(late, case.gy), chains.backprop(early, case.gy)]
        for other, how in zip(
            [again, *interleaved],
            [
                "backward run again on the same graph",
                "backward on the second of two graphs",
                "backward on the first of two graphs",
            ],
            strict=True,
        ):
            if not chains.same(kept, other):
                raise _nondeterministic(
                    case,
                    Kind.STATEFUL_BACKWARD,
                    f"{how} returned different bits from the first backward",
                    kept,
                    other,
                )
        if not chains.same(kept, first):
            raise _nondeterministic(
                case,
                Kind.STATEFUL_BACKWARD,
                "a later backward changed the gradient array an earlier backward returned",
                kept,
                first,
            )


def _graph_elsewhere(case):
    """A valid forward pass of the chain at an input other than x, or None."""
    for moved in (case.x * 0.5, case.x * 2, case.x + 1, case.x - 1):
        graph = chains.build(case.chain, moved)
        if graph.valid() and graph.y.data.shape == np.shape(case.gy):
            return graph
    return None


# The property each test checks, by name; the replay scripts look checks up here.
CHECKS = {
    "gradient": check_gradient,
    "gradient_of_chains": check_gradient,
    "gradient_across_binades": check_gradient,  # its Findings are on ordinary cases
    "traversals_agree": check_traversals,
    "invariants_hold": check_invariants,
}
