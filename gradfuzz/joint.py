"""The check of the graph properties: every input's gradient, alone and all together.

A Function with several inputs is judged along one random direction q through
all of its differentiated inputs at once, and along q restricted to each input
alone, so that a wrong gradient of any one input fails on its own and is named;
where inputs hold equal elements, also along a direction that moves each group
of equal elements together (`tied_direction`).
The oracle is the chains' (`oracle.estimate`, forward evaluations only) applied
to the packed call of `gradfuzz.dag`; an example it cannot judge is rejected.
"""

import numpy as np
from hypothesis import event, note, target

from gradfuzz import graph as chains
from gradfuzz import oracle
from gradfuzz.checks import CONSISTENCY, SAFETY_ON_ROUNDING, _cancellation_floor, step_scales
from gradfuzz.findings import Finding, Kind
from gradfuzz.guard import reject_example, tell
from gradfuzz.verdicts import Status, Verdict

# Backward's own rounding through an adapter cannot always be rerun in long double, so a
# mismatch must also exceed this many epsilons (of the Function's dtype) of the terms'
# magnitude, |<g, q>|'s parts and the oracle's scale: a wrong formula is off by O(1) of
# them, rounding is not.
BACKWARD_ULPS = 64
# A correct backward may overflow in an intermediate value where the true derivative is
# this close to the largest float of its dtype (as the chains' checks allow).
NEAR_OVERFLOW = 2**10


def check_graph_gradient(case):
    """Backward's gradients match the oracle jointly and input by input; returns the joint Verdict.

    Raises a `gradient_mismatch` Finding naming the input whose gradient is wrong
    (or "jointly" when only the joint direction fails), or the Finding of a
    backward that misbehaves; rejects the example when no direction can be judged.
    """
    graph = case.take_graph() or chains.build(case.chain, case.x)
    if not graph.valid():
        reject_example("input outside the chain's domain")
    g = case.call.gradients(case.x, case.gy)
    wide = _Wide(case)
    directions = []
    for i, where in case.call.segments().items():
        if len(case.call.free) > 1:
            alone = np.zeros_like(case.d)
            alone[where] = case.d[where]
            directions.append((i, alone))
    directions.append((None, case.d))  # a joint failure only where no input fails alone
    groups = tied_groups(case.x)
    if groups:  # last: the one direction along which a Function with kinks at ties is smooth
        directions.append((TIED, tied_direction(case.d, groups)))
    joint, judged, worst, passed = None, 0, 0.0, set()
    for i, d in directions:
        verdict = _judge(case, graph.y.data, g, d, wide, groups if i is TIED else None)
        if verdict.status == Status.REJECT:
            tell(event, f"graph gradient: not judged ({verdict.reason})")
            continue
        judged += 1
        if i is TIED:
            tell(event, "graph gradient: judged along tied elements moved together")
        if verdict.tolerance > 0 and np.isfinite(verdict.abs_error / verdict.tolerance):
            worst = max(worst, verdict.abs_error / verdict.tolerance)
        if verdict.status == Status.FAIL:
            raise _mismatch(case, i, verdict, _alone(case.call.free, passed) if i is None else None)
        passed.add(i)
        joint = verdict
    if joint is None:
        reject_example("no direction could be judged")
    tell(event, f"graph gradient: {judged} of {len(directions)} directions judged")
    tell(target, min(worst, 1e6), label="error/tolerance")
    return joint


# The label of the direction that moves tied elements together.
TIED = "tied"


def tied_groups(x):
    """The groups of equal elements of the packed inputs x (indices), those of two or more."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return [np.flatnonzero(inverse == k) for k in np.flatnonzero(counts > 1)]


def tied_direction(d, groups):
    """d's first element of each group given to the whole group, zero outside the groups.

    Along it, elements that are equal stay equal: a Function whose only kinks are
    where elements tie (max, min, sort, max pooling) is differentiable along it,
    its directional derivative is well defined, and a backward whose gradient
    over a tie does not add up to the derivative (gy sent to every tied maximum)
    fails. The direction comes from the inputs alone, never from backward.
    """
    q = np.zeros_like(d)
    for group in groups:
        q[group] = d[group[0]]
    return q


class _Wide:
    """Backward rerun in long double, once, on a fail: how far rounding moved the float64 g."""

    def __init__(self, case):
        self.case, self._g = case, None

    def rounding(self, g, q, used):
        if self._g is None:
            try:
                self._g = self.case.call.gradients(self.case.x, self.case.gy, dtype=np.longdouble)
            except Finding:
                self._g = False
        if self._g is False:
            return 0.0
        with np.errstate(all="ignore"):
            moved = abs(float(np.sum((g[used] - self._g[used]) * q[used])))
        return moved if np.isfinite(moved) else 0.0


def _judge(case, y0, g, d, wide, groups=None):
    """The Verdict along d (scaled per `step_scales`) of backward's <g, q> against the oracle.

    A fail must survive two more tests, or the example is rejected: the oracle
    along q / 4 (other steps, other rounding) must agree with itself and fail
    too, and bisecting q's elements must find a block that still fails (a kink
    hidden among other elements is seen alone). A fail found with steps relative
    to elements above 1 must fail with absolute steps too. `groups` (index arrays)
    are bisected whole, so that tied elements keep moving together.
    """
    for s in step_scales(case.x):
        verdict = _along(case, y0, g, d * s, wide)
        if verdict.status != Status.REJECT:
            break
    if verdict.status != Status.FAIL:
        return verdict
    if np.any(s > 1) and _along(case, y0, g, d, wide, near_h0=True).status != Status.FAIL:
        # Steps relative to elements above 1 can span many periods (sin(v0 * v0), v0 = 8192).
        return _rejected("a mismatch that steps of absolute size do not confirm")
    q = d * s
    block = groups or [np.array([i]) for i in np.flatnonzero(q)]
    while True:
        confirmed = _confirmed(case, y0, g, _on(q, block), wide)
        if confirmed.status != Status.FAIL:
            return confirmed
        verdict = confirmed
        if len(block) == 1:
            return verdict
        middle = (len(block) + 1) // 2
        for half in (block[:middle], block[middle:]):
            if _along(case, y0, g, _on(q, half), wide).status == Status.FAIL:
                block = half
                break
        else:
            return _rejected("a mismatch that no part of the inputs reproduces")


def _on(q, block):
    """q on the elements of `block` (a list of index arrays), zero elsewhere."""
    kept = np.zeros_like(q)
    where = np.concatenate(block)
    kept[where] = q[where]
    return kept


def _confirmed(case, y0, g, q, wide):
    """The fail along q, if the oracle along q / 4 fails too and agrees with it; else a reject."""
    first = _along(case, y0, g, q, wide, full=True)
    second = _along(case, y0, g, q / 4, wide, full=True)
    if first.status != Status.FAIL:
        return first
    if second.status == Status.REJECT:
        return second
    if second.status == Status.PASS or abs(4 * second.numerical - first.numerical) > (
        4 * second.tolerance + first.tolerance
    ):
        return _rejected("the oracle disagrees with itself at two step sizes")
    return first


def _rejected(reason):
    return Verdict(Status.REJECT, reason, np.nan, np.nan, np.nan, np.nan)


def _along(case, y0, g, q, wide, full=False, near_h0=False):
    """Pass, fail or reject of <g, q> against one oracle Estimate along q.

    The allowance for backward's own rounding: BACKWARD_ULPS epsilons of the terms,
    the chains' cancellation floor, and, before a fail, twice what a long double
    rerun of backward moves <g, q> by.
    """
    probe = oracle.Probe(case.chain, case.x, q, case.gy, y0)
    found = oracle.estimate(probe)
    if isinstance(found, oracle.Estimate) and not found.significant:
        found = _flat(probe, found)
    if not isinstance(found, oracle.Estimate):
        return _rejected(found.reason)
    used = found.q != 0  # another input's gradient does not enter a direction along one input
    with np.errstate(all="ignore"):
        terms = g[used] * found.q[used]
        analytic = float(np.sum(terms))
        eps = float(np.finfo(case.call.dtype).eps)  # backward ran in the Function's dtype
        rounding = BACKWARD_ULPS * eps * (float(np.sum(np.abs(terms))) + found.scale)
    allowed = found.tolerance + CONSISTENCY * found.scale + rounding
    if not np.isfinite(found.tolerance):
        return _rejected("the oracle's error is not finite (overflow)")
    if not np.isfinite(analytic):
        if abs(found.value) > float(np.finfo(case.call.dtype).max) / NEAR_OVERFLOW:
            return _rejected("the true derivative is within 2^10 of overflow")
        return Verdict(Status.FAIL, found.method, analytic, found.value, allowed, found.step)
    status = Status.PASS if abs(analytic - found.value) <= allowed else Status.FAIL
    if status == Status.FAIL:
        allowed += _cancellation_floor(found, case.gy) + SAFETY_ON_ROUNDING * wide.rounding(
            g, found.q, used
        )
        status = Status.PASS if abs(analytic - found.value) <= allowed else Status.FAIL
    if status == Status.FAIL and found.method == FLAT:
        # Tanh's 1 - y * y near saturation: y does not move by one ulp at these steps, yet
        # the derivative is not zero. A flat output can confirm a zero, never convict.
        return _rejected("the output does not move at these steps (flat)")
    if near_h0 and status == Status.FAIL and found.step > oracle.H0:
        # The larger steps the oracle tries where rounding swamps h0 can span many periods
        # of a fast oscillation (sin(v0 * v0) at v0 = 8192): they cannot confirm a fail.
        return _rejected("a mismatch seen only at steps above h0, which can alias")
    if full:
        tell(note, f"analytic={analytic!r} numerical={found.value!r} tolerance={allowed!r}")
    return Verdict(status, found.method, analytic, found.value, allowed, found.step)


FLAT = "central difference (flat)"


def _flat(probe, found):
    """A zero Estimate where the output does not move at all along q, else Unjudged.

    Where every central difference the oracle took is exactly zero (a Function
    linear in this input has a zero second derivative; x0 * x1 does not move along
    x1 at x0 = 0), a backward within the oracle's rounding error of zero there
    passes. It never fails on this estimate: an intermediate value that rounding
    holds still (a saturated tanh) hides a derivative of unknown size.
    """
    if found.value != 0 or found.scale != 0:
        return oracle.Unjudged("no significant digit")
    h = found.step
    if any(probe.central(h * 2.0**-k) != (0.0, 0.0) for k in range(3)):
        return oracle.Unjudged("no significant digit")
    tolerance = oracle.SAFETY * oracle.rounding_error(probe, h / 2)
    return oracle.Estimate(0.0, tolerance, 0.0, found.q, FLAT, h)


def _alone(free, passed):
    """The one differentiated input not confirmed alone, when every other one passed, else None.

    <g, q> is the sum of each input's part: when a joint direction fails and every
    input but one passed alone, the wrong part is that input's (x1 of x0 * x1 at
    x0 = 0, where x1 alone does not move the output and cannot be judged).
    """
    unconfirmed = [i for i in free if i not in passed]
    return unconfirmed[0] if len(free) > 1 and len(unconfirmed) == 1 else None


def _mismatch(case, i, verdict, inferred=None):
    which = {
        None: "jointly, along every input at once",
        TIED: "along a direction that moves every group of equal input elements together",
    }.get(i, f"of input {i}")
    if inferred is not None:
        which = f"of input {inferred}, found jointly: every other input's gradient passed alone"
        i = inferred
    order = getattr(case.call, "order", "gradient")
    return Finding(
        Kind.GRADIENT_MISMATCH,
        case.target,
        f"the {order} {which}: <backward(gy), q> = {verdict.analytic:.17g} but the "
        f"{verdict.reason} gives {verdict.numerical:.17g} +- {verdict.tolerance:.3g}",
        chain=case.names(),
        **case.describe(),
        upstream_grad=case.gy,
        direction=case.d,
        wrong_input=None if i is TIED else i,
        tied=i is TIED,
        analytic=verdict.analytic,
        numerical=verdict.numerical,
        abs_error=verdict.abs_error,
        rel_error=verdict.rel_error,
        tolerance=verdict.tolerance,
    )


# The graph property each test checks, by name; the replay scripts look checks up here.
GRAPH_CHECKS = {
    "gradient_of_graphs": check_graph_gradient,
    "gradient_of_dags": check_graph_gradient,
    "gradient_of_gradients": check_graph_gradient,  # on a SecondCall: see replay
}
