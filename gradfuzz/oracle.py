"""The numerical oracle: directional central differences with an estimate of their own error.

The check compares backward's vector-Jacobian product <g, p> with the central
difference <gy, f(x + h p) - f(x - h p)> / 2h. The tolerance is not a fixed
rtol: it is the oracle's estimated error, the sum of
- truncation, estimated as |D(h) - D(h/2)| (about three times D(h/2)'s own), and
- rounding, from a first-order forward error model: each stage i adds a
  relative error of ULPS machine epsilons to its output a_i, which reaches the
  result weighted by the gradient at that stage, sum_i <|grad a_i|, |a_i|>; the
  x term covers the rounding of x +- h p itself.
Only when the cheap check fails does `diagnose` spend more forward passes: a
ladder of steps that recognises kinks and non-convergent differences (rejected,
never reported) and otherwise re-judges on the best converged step.
"""

import itertools
from dataclasses import dataclass

import numpy as np

from gradfuzz import graph as chains
from gradfuzz.verdicts import Status, Verdict

EPS = float(np.finfo(np.float64).eps)
TINY = float(np.finfo(np.float64).tiny)
H0 = EPS ** (1 / 3)  # balances truncation (h^2) against rounding (eps / h)
ULPS = 4  # rounding error one stage's forward may add, in machine epsilons
SAFETY = 2  # margin on top of the error estimate
LADDER = [H0 * 2.0**k for k in range(3, -31, -1)]  # 8 h0 down to h0 / 2^30


@dataclass
class Point:
    """Forward values at one point and their rounding scale sum_i <|grad a_i|, |a_i|>."""

    y: np.ndarray
    scale: float
    inner: list  # the values between the stages, a_1 .. a_(k-1)


class Oracle:
    """Directional differences of one chain at x along p, weighted by gy.

    `grads` are the gradients at every stage from backprop at x (x first, gy last).
    """

    def __init__(self, chain, x, p, gy, grads):
        self.chain, self.x, self.p, self.gy = chain, x, p, gy
        self.g = np.asarray(grads[0], dtype=np.float64)
        self.grads = [np.abs(np.asarray(g, dtype=np.float64)) for g in grads]
        self._points = {}

    def at(self, t):
        """Forward at x + t p, or None where the chain is not valid there."""
        if t not in self._points:
            graph = chains.build(self.chain, self.x + t * self.p)
            point = None
            if graph.valid():
                with np.errstate(over="ignore"):  # an infinite scale only loosens the check
                    scale = sum(
                        float(np.sum(g * np.abs(v.data)))
                        for g, v in zip(self.grads, graph.variables, strict=True)
                    )
                point = Point(graph.y.data, scale, [v.data for v in graph.variables[1:-1]])
            self._points[t] = point
        return self._points[t]

    def central(self, h):
        """(D(h), rounding error of D(h)), or None where a point is invalid.

        x +- h p round to floats, so the step taken differs from 2 h p; D(h) is
        corrected by backward's <g, taken - 2 h p> / 2h, so that an element whose
        step rounds away entirely is compared with nothing rather than with zero.
        """
        plus, minus = self.at(h), self.at(-h)
        if plus is None or minus is None:
            return None
        taken = (self.x + h * self.p) - (self.x - h * self.p)
        correction = float(np.sum(self.g * (taken - 2 * h * self.p))) / (2 * h)
        value = float(np.sum(self.gy * (plus.y - minus.y))) / (2 * h) - correction
        return value, ULPS * EPS * (plus.scale + minus.scale) / (2 * h)

    def reach(self, h):
        """The largest |D(h)| that the outputs' magnitudes allow: sum |gy| (|y+| + |y-|) / 2h."""
        plus, minus = self.at(h), self.at(-h)
        return float(np.sum(np.abs(self.gy) * (np.abs(plus.y) + np.abs(minus.y)))) / (2 * h)

    def underflow(self, h=H0):
        """What gradients lost to underflow between the stages can cost <g, p>.

        An intermediate gradient can lose up to the smallest normal float per
        element (1/x^2 of a huge x is 0); the loss reaches <g, p> through the
        stages before it, whose directional derivative the central difference
        gives. 0 when a point at +-h is invalid.
        """
        plus, minus = self.at(h), self.at(-h)
        if plus is None or minus is None:
            return 0.0
        with np.errstate(over="ignore"):
            slopes = sum(
                float(np.sum(np.abs(a - b))) for a, b in zip(plus.inner, minus.inner, strict=True)
            )
            return TINY * slopes / (2 * h)

    def one_sided_gap(self, h):
        """(|forward difference - backward difference|, its rounding error) at step h."""
        plus, zero, minus = self.at(h), self.at(0.0), self.at(-h)
        if plus is None or zero is None or minus is None:
            return None
        gap = float(np.sum(self.gy * (plus.y - 2 * zero.y + minus.y))) / h
        return abs(gap), 2 * ULPS * EPS * (plus.scale + 2 * zero.scale + minus.scale) / h


def analytic_rounding(g, p, depth):
    """Rounding error of <g, p>: each backward stage adds ULPS epsilons, relative."""
    return ULPS * EPS * (depth + 1) * float(np.sum(np.abs(g * p))) + 1e3 * TINY


def compare(oracle, analytic, floor):
    """The cheap check: D(h) and D(h/2) at the first step where both are valid."""
    for h in LADDER[3:13]:
        coarse, fine = oracle.central(h), oracle.central(h / 2)
        if coarse is not None and fine is not None:
            tolerance = SAFETY * (abs(coarse[0] - fine[0]) + fine[1]) + floor
            status = Status.PASS if abs(analytic - fine[0]) <= tolerance else Status.SUSPECT
            return Verdict(status, "central difference", analytic, fine[0], tolerance, h / 2)
    return Verdict(Status.REJECT, "no step keeps x +- h p valid", analytic, np.nan, np.nan, np.nan)


def _trusted(rows, analytic):
    """True when four consecutive steps h, h/2, h/4, h/8 show the asymptotic regime.

    Each row is (D, noise of D, one-sided gap, noise of the gap, reach).
    Required: the differences D(h) - D(h/2) keep one sign and at least halve at
    each step (or sink into rounding noise); the step is small against the
    curvature (the one-sided differences differ by at most a quarter of D); and
    the outputs are large enough to show a slope as steep as the analytic one
    over the step. A step that aliases a fast oscillation fails one of these.
    """
    for d, _noise, gap, gap_noise, reach in rows:
        if gap > 0.25 * abs(d) + 8 * gap_noise or abs(analytic) > reach:
            return False
    deltas = [a[0] - b[0] for a, b in itertools.pairwise(rows)]
    noises = [2 * (a[1] + b[1]) for a, b in itertools.pairwise(rows)]
    for (before, after), noise in zip(itertools.pairwise(deltas), noises[1:], strict=False):
        if abs(after) <= noise:
            continue
        if after * before < 0 or abs(after) > 0.5 * abs(before) + noise:
            return False
    return True


# Trusted windows in a row that must agree before the ladder stops early.
CONCLUSIVE = 3


def _kink(gaps):
    """The one-sided gap stays clear of rounding and does not shrink over two quarterings.

    At a kink the one-sided differences disagree by the jump, whatever the step;
    on a smooth function they disagree by O(h), so a quarter of the step quarters it.
    """
    if len(gaps) < 5 or any(g is None for g in gaps[-5::2]):
        return False
    big, mid, small = (g[0] for g in gaps[-5::2])
    clear = all(g[0] > 8 * g[1] for g in gaps[-5::2])
    return clear and mid > 0.5 * big and small > 0.5 * mid


def diagnose(oracle, analytic, floor):
    """The expensive re-judgement of a suspect: kink, non-convergence, or the verdict.

    Walks the ladder from the largest step down and stops at a kink or once
    CONCLUSIVE trusted windows in a row agree.
    """
    rows, gaps, estimates = [], [], []
    for h in LADDER:
        central, gap = oracle.central(h), oracle.one_sided_gap(h)
        gaps.append(gap)
        if _kink(gaps):
            return Verdict(Status.REJECT, "kink", analytic, np.nan, np.nan, h)
        rows.append(None if central is None or gap is None else (*central, *gap, oracle.reach(h)))
        window = rows[-4:]
        if len(window) < 4 or None in window or not _trusted(window, analytic):
            continue
        e = abs(window[2][0] - window[3][0])
        tolerance = SAFETY * (e + window[3][1]) + floor
        estimates.append(
            Verdict(Status.PASS, "central-difference ladder", analytic, window[3][0], tolerance, h)
        )
        if len(estimates) >= CONCLUSIVE and _agree(estimates[-CONCLUSIVE:]):
            break
    # Windows that each look converged but contradict each other mean the oracle is
    # being fooled (a step aliasing a fast oscillation): it cannot judge here.
    if not _agree(estimates):
        return Verdict(Status.REJECT, "inconsistent differences", analytic, np.nan, np.nan, np.nan)
    best = min(estimates, key=lambda v: v.tolerance, default=None)
    if best is None:
        valid = sum(row is not None for row in rows)
        reason = "overflow or domain edge" if valid < len(rows) else "non-convergent difference"
        return Verdict(Status.REJECT, reason, analytic, np.nan, np.nan, np.nan)
    if best.abs_error > best.tolerance:
        best.status = Status.FAIL
    return best


def _agree(estimates):
    return all(
        abs(a.numerical - b.numerical) <= a.tolerance + b.tolerance
        for a, b in itertools.pairwise(estimates)
    )
