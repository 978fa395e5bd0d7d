"""The numerical oracle: a directional derivative from forward evaluations only, with its own error.

For a chain f, an input x, an upstream gradient gy and a direction q, the oracle
estimates <gy, J q>, which a correct backward gives as <backward(gy), q>. It never
looks at backward: every estimate, tolerance, scale and decision to leave an
example unjudged comes from forward evaluations.

- D(h) = <gy, f(x + h q) - f(x - h q)> / 2h. The points x +- h q round to floats,
  so D(h) is the derivative along the realized direction ((x + h q) - (x - h q)) / 2h,
  which the Estimate carries for the analytic side to use.
- Truncation: |D(h) - D(h/2)|, about three times D(h/2)'s own.
- Rounding: the forward's rounding, measured by running the chain with every
  stage's output (and x) moved by ULPS epsilons with two sign patterns; it enters
  D(h/2) divided by h/2.
- Kinks: the one-sided differences' gap <gy, f(x+h q) - 2 f(x) + f(x-h q)> / h,
  per output element, halves with h on a smooth function and stays at the jump at
  a kink; a gap that does not shrink over four halvings is a kink: unjudged.
- Asymptotic regime: D(h) and D(h/2) must differ by at most a quarter of `scale`,
  the summed magnitude of D's terms; otherwise a ladder of smaller steps looks for
  a converged window, and without one the example is unjudged.
- Significant digits: an estimate whose tolerance exceeds DIGIT times its scale
  cannot judge anything: unjudged.
- Forward's rounding, measured: forward runs again in long double at the same
  points, and the tolerance covers how far that moves D (`measured_in_wide`).
"""

import dataclasses
import functools
import itertools
from dataclasses import dataclass

import numpy as np

from gradfuzz import graph as chains
from gradfuzz.findings import Finding, Kind

EPS = float(np.finfo(np.float64).eps)
TINY = float(np.finfo(np.float64).tiny)
WIDE = np.longdouble
HAS_WIDE = float(np.finfo(WIDE).eps) < EPS  # long double is float64 on some platforms
H0 = EPS ** (1 / 3)  # balances truncation (h^2) against rounding (eps / h)
ULPS = 4  # rounding error one stage's forward may add, in machine epsilons
SAFETY = 2  # margin on top of every error estimate
DIGIT = 0.1  # a verdict needs a tolerance below this fraction of the estimate's scale
ASYMPTOTIC = 0.25  # D(h) - D(h/2) above this fraction of the scale: h is too large
KINK_RATIO = 0.75  # a one-sided gap that keeps this fraction of itself per halving is a jump
# A step ratio off the powers of two, against oscillations whose period divides them.
OFF_GRID = 2.0**-0.5
LADDER = [H0 * 2.0**k for k in range(0, -31, -1)]  # h0 down to h0 / 2^30
CONCLUSIVE = 3  # agreeing windows in a row that end the ladder early
NOISE_STEP = 2.0**20  # ulps of x between the points of the noise probe
NOISE_POINTS = 9  # points of the line whose residuals measure the output's noise
QUANTUM_SEARCH = 24  # doublings of the noise probe's step that look for the output's quantum


# Forward's rounding, measured by forward in long double, leaves a float64 estimate that
# seemed significant without a digit: no smaller step can do better.
SWAMPED = "forward's rounding, measured in long double, leaves no digit"


@dataclass
class Estimate:
    """A directional derivative <gy, J q> along the realized direction `q`, with its error."""

    value: float
    tolerance: float
    scale: float  # the summed magnitude of the terms behind `value`, from forward only
    q: np.ndarray
    method: str
    step: float
    # The step h of the central difference D(h) whose value this is; None for other oracles.
    central_step: float | None = None
    note: str = ""  # what could not be measured, for a failing verdict's detail

    @property
    def significant(self):
        return self.scale > 0 and self.tolerance <= DIGIT * self.scale


@dataclass
class Unjudged:
    """Why the oracle cannot judge this example; the same whatever backward does."""

    reason: str


def _memo(method):
    """Cache a Probe computation by its arguments, as the points behind it are cached.

    The estimate asks for the same difference many times (the kink test, the
    rounding, the regime tests); it is computed once. A cached array is made
    read-only, so that no caller can change what the next one gets.
    """

    @functools.wraps(method)
    def cached(probe, *args):
        key = (method.__name__, *args)
        if key not in probe._memo:
            found = method(probe, *args)
            if isinstance(found, np.ndarray):
                found.flags.writeable = False
            probe._memo[key] = found
        return probe._memo[key]

    return cached


class Probe:
    """Forward evaluations of one chain at x + s q, cached by s.

    `jitter` (a dict) shares the noise probe's jittered forward passes, which do
    not depend on q or gy, between the Probes of one chain at one x.
    """

    def __init__(self, chain, x, q, gy, y0=None, jitter=None):
        self.chain, self.x, self.q, self.gy = chain, x, q, gy
        self._points = {} if y0 is None else {0.0: y0}
        self._noise = None
        self._memo = {}
        self._jitter = {} if jitter is None else jitter

    def at(self, s):
        """The output at x + s q, or None where the chain is not valid there."""
        if s not in self._points:
            graph = chains.build(self.chain, self.x + s * self.q)
            self._points[s] = graph.y.data if graph.valid() else None
        return self._points[s]

    def wide_shift(self, h, value):
        """(|D(h) in long double - value|, None), or (None, why it cannot be measured)."""
        wide, reason = self.wide_central(h)
        if wide is None:
            return None, reason
        with np.errstate(over="ignore", invalid="ignore"):
            shift = float(abs(wide - WIDE(value)))
        if not np.isfinite(shift):
            return None, "forward overflows in long double here"
        return shift, None

    @_memo
    def wide_central(self, h):
        """(D(h) with forward run in long double, None), or (None, why it cannot run).

        The points x +- h q are float64's own: only forward's rounding changes.
        """
        if not HAS_WIDE:
            return None, "no type wider than float64 on this platform"
        ends = []
        for s in (h, -h):
            try:
                graph = chains.build(self.chain, (self.x + s * self.q).astype(WIDE))
            except Finding as finding:
                if finding.kind == Kind.TIMEOUT:
                    raise
                return None, f"forward failed in long double ({finding.kind})"
            if not graph.valid():
                return None, "forward is not valid in long double here"
            if any(np.asarray(v.data).dtype != WIDE for v in graph.variables):
                return None, "forward returns float64 for long double input"
            ends.append(graph.y.data)
        with np.errstate(over="ignore", invalid="ignore"):
            gy = np.asarray(self.gy, dtype=WIDE)
            return np.sum(gy * (ends[0] - ends[1])) / (2 * WIDE(h)), None

    def realized(self, h):
        """The direction a central difference with step h really takes: ((x+hq) - (x-hq)) / 2h."""
        return ((self.x + h * self.q) - (self.x - h * self.q)) / (2 * h)

    @_memo
    def central(self, h):
        """(D(h), the summed magnitude of its terms), or None where a point is invalid."""
        plus, minus = self.at(h), self.at(-h)
        if plus is None or minus is None:
            return None
        with np.errstate(over="ignore", invalid="ignore"):
            terms = self.gy * (plus - minus) / (2 * h)
            value, scale = float(terms.sum()), float(np.abs(terms).sum())
        if not (np.isfinite(value) and np.isfinite(scale)):
            return None
        return value, scale

    @_memo
    def gaps(self, h):
        """|gy (f(x+hq) - 2 f(x) + f(x-hq))| / h per output element, or None."""
        plus, zero, minus = self.at(h), self.at(0.0), self.at(-h)
        if plus is None or zero is None or minus is None:
            return None
        with np.errstate(over="ignore", invalid="ignore"):
            return np.abs(self.gy * ((plus - zero) + (minus - zero))) / h

    def noise(self):
        """Per output element, the rounding noise of <gy, f> near x, measured two ways.

        - Jitter: the chain runs with x and every stage's output moved by ULPS eps,
          with two sign patterns (all +1 and a fixed pseudo-random one): how far
          rounding between the stages can move the result.
        - A second difference at a spacing of NOISE_STEP ulps of x, where the
          function is linear to far below eps: f(x+dq) - 2 f(x) + f(x-dq) is pure
          evaluation noise, including cancellation inside a stage that the
          jitter cannot see. One sample, so it counts three times.
        - The residuals of a straight line fitted through NOISE_POINTS points at
          that spacing: output quantized by cancellation (log1p(exp(-2a)) + a -
          log 2 near 0 moves in the epsilons of log 2) can give one second
          difference of 0 by luck, not nine residuals.
        """
        if self._noise is None:
            zero = self.at(0.0)
            worst = np.zeros(np.shape(zero))
            for coherent in (True, False):
                moved = _jittered(self.chain, self.x, coherent, self._jitter)
                if moved is None or np.shape(moved) != np.shape(zero):
                    worst = np.full(np.shape(zero), np.inf)
                    break
                with np.errstate(over="ignore", invalid="ignore"):
                    worst = np.maximum(worst, np.abs(self.gy * (moved - zero)))
            step = self._noise_step()
            gaps = self.gaps(step)
            if gaps is None:
                worst = np.full(np.shape(zero), np.inf)
            else:
                worst = np.maximum(worst, 3 * gaps * step)
                worst = np.maximum(worst, 2 * self._residuals(step))
                worst = np.maximum(worst, self._stuck(step) / max(np.size(zero), 1))
            self._noise = np.where(np.isfinite(worst), worst, np.inf)
        return self._noise

    def _residuals(self, step):
        """Per output element, |gy| times the largest residual of a least-squares line
        through f(x + k step q), k = -(NOISE_POINTS // 2)..NOISE_POINTS // 2; inf where
        a point is invalid."""
        ks = np.arange(NOISE_POINTS) - NOISE_POINTS // 2
        points = [self.at(float(k) * step) for k in ks]
        if any(p is None for p in points):
            return np.full(np.shape(self.at(0.0)), np.inf)
        with np.errstate(over="ignore", invalid="ignore"):
            ys = np.stack([np.asarray(p, dtype=np.float64) for p in points])
            centre = ys[NOISE_POINTS // 2]
            shifted = ys - centre  # the line's residuals do not depend on a constant
            slope = np.tensordot(ks, shifted, axes=1) / float(np.sum(ks * ks))
            intercept = np.mean(shifted, axis=0)
            fitted = intercept + np.multiply.outer(ks, slope)
            worst = np.max(np.abs(shifted - fitted), axis=0)
            return np.abs(self.gy) * worst

    @_memo
    def step_noise(self, h):
        """Noise seen at the steps of a central difference, from fourth differences over
        x + (-s, -s/2, 0, s/2, s) q at the spreads s = h and s = h/2. About 2 sigma.

        Their smooth part is O(s^4) and shrinks 16 times from h to h/2; noise does
        not, so what the smaller spread keeps beyond a sixteenth of the larger is
        noise. Output that moves in coarse quanta (1 - t*t with t near 1) shows
        here, where the finer probes of `noise` fall between two quanta.
        """
        fourths = []
        for spread in (h, h / 2):
            points = [self.at(s * spread) for s in (1.0, 0.5, 0.0, -0.5, -1.0)]
            if any(p is None for p in points):
                return 0.0
            with np.errstate(over="ignore", invalid="ignore"):
                a, b, c, d, e = points
                fourths.append(float(np.abs(self.gy * ((a + e) - 4 * (b + d) + 6 * c)).sum()))
        wide, narrow = fourths
        if not np.isfinite(wide + narrow):
            return np.inf
        return max(narrow - wide / 16, 0.0) / 4

    def _stuck(self, step):
        """A floor for output that moves in quanta coarser than the noise probe's step.

        Where <gy, f> barely moves across x +- step q although the central difference
        at h0 says it should, the output is quantized at least that coarsely (0.5 tanh
        + 0.5 near 1e-11 moves by the epsilons of 1, not of itself). The steps then
        double until it moves: its first move is one quantum or more.
        """
        central = self.central(LADDER[0])
        if central is None:
            return 0.0
        predicted = abs(central[0]) * 2 * step
        observed = self._moved(step)
        if observed is None or observed >= predicted / 4:
            return 0.0
        for k in range(1, QUANTUM_SEARCH + 1):
            moved = self._moved(step * 2.0**k)
            if moved is None:
                break
            if moved > 0:
                return max(predicted, moved)
        return predicted

    def _moved(self, s):
        """|<gy, f(x + s q) - f(x - s q)>|, or None where a point is invalid."""
        plus, minus = self.at(s), self.at(-s)
        if plus is None or minus is None:
            return None
        with np.errstate(over="ignore", invalid="ignore"):
            return abs(float((self.gy * (plus - minus)).sum()))

    def _noise_step(self):
        """A step that moves the largest element of x that q moves by NOISE_STEP ulps."""
        reach = float(np.abs(self.q).max(initial=0.0))
        if reach == 0:
            return 1.0
        return NOISE_STEP * EPS * max(largest_moved(self.x, self.q), TINY / EPS) / reach


def largest_moved(x, q):
    """max |x_i| over the elements that q moves (q_i != 0), 0 when none."""
    return float(np.abs(x[q != 0]).max(initial=0.0)) if np.shape(q) == np.shape(x) else 0.0


# A fixed seed: the probe must be the same on every run, and it is not test data.
_SEED = 20261129


def _pattern(shape, coherent):
    if coherent:
        return np.ones(shape)
    return np.random.default_rng(_SEED).choice([-1.0, 1.0], size=shape)


def _jittered(chain, x, coherent, seen):
    """The chain's output with x and each stage's output moved by ULPS eps (one sign pattern).

    `seen` maps (stage, its input's bits) to the stage's output, or None where it
    is not valid: a one-element array's two patterns coincide, and the Probes of
    other directions at the same x run the same passes.
    """
    value = x * (1 + ULPS * EPS * _pattern(x.shape, coherent))
    for i, spec in enumerate(chain):
        key = (i, chains.bits(value))
        if key not in seen:
            graph = chains.build((spec,), value)
            seen[key] = graph.y.data if graph.valid() else None
        if seen[key] is None:
            return None
        y = seen[key]
        value = y * (1 + ULPS * EPS * _pattern(y.shape, coherent))
    return value


def estimate(probe):
    """The central-difference Estimate of <gy, J q>, or Unjudged with the reason; its
    tolerance covers forward's rounding as a long double forward measures it
    (`measured_in_wide`).
    """
    found = _estimate(probe)
    return measured_in_wide(probe, found) if isinstance(found, Estimate) else found


def measured_in_wide(probe, found):
    """`found` with its tolerance widened to the rounding that forward in long double
    shows in its central difference, or with a note where that cannot run.

    Output stuck on one quantum while a smooth factor moves (0.5 x (1 + tanh u) with
    tanh u near -1) gives a central difference that agrees with itself at every
    step, and a noise probe that sees nothing: only a wider forward shows it.
    """
    shift, reason = probe.wide_shift(found.central_step, found.value)
    if shift is None:
        return dataclasses.replace(found, note=f"the oracle's rounding not measured: {reason}")
    widened = dataclasses.replace(
        found, tolerance=found.tolerance + SAFETY * max(shift - found.tolerance, 0.0)
    )
    if found.significant and not widened.significant:
        return Unjudged(SWAMPED)
    return widened


def _estimate(probe):
    """The central-difference Estimate of <gy, J q> in float64, or Unjudged with the reason.

    Where the steps from h0 are in the asymptotic regime but the estimate has no
    significant digit (the forward's rounding swamps its change), larger steps
    are tried, up to 2^12 times larger. A ladder's estimate is never widened so:
    a step that aliases an oscillation must not grow.
    """
    for h in LADDER[:12]:
        valid = probe.central(h) is not None and probe.central(h / 2) is not None
        if valid and probe.at(0.0) is not None:
            break
    else:
        return Unjudged("no valid step: the domain's edge or overflow")
    if _kink(probe, h):
        return Unjudged("kink")
    found = _at_step(probe, h)
    if found is None:
        return _ladder(probe, h)
    (d1, _), (d2, _) = probe.central(h), probe.central(h / 2)
    flat = abs(d1 - d2) < rounding_error(probe, h / 2)
    if not found.significant and flat:  # smooth at h, but its change is lost in rounding
        for k in range(2, 13, 2):
            larger = _at_step(probe, h * 2.0**k)
            if larger is not None and larger.significant:
                return larger
    return found


def _at_step(probe, h):
    """The Estimate D(h/2) where the steps h, h/2 and h/4 are in the asymptotic regime.

    Its error: the larger of |D(h) - D(h/2)|, 2 |D(h/2) - D(h/4)| (the latter
    shows output that moves in coarse quanta, as 1 - t*t with t near 1 does) and
    2 |D(h/2) - D(OFF_GRID h/2)| (an oscillation whose period divides the steps
    h, h/2 and h/4 gives three agreeing differences, but not a fourth off their
    grid), plus the rounding. None where a step is invalid or the regime is not asymptotic.
    """
    found = [probe.central(h * 2.0**-k) for k in range(3)] + [probe.central(h / 2 * OFF_GRID)]
    if any(f is None for f in found):
        return None
    (d1, _), (d2, scale), (d3, _), (off, _) = found
    rounding = rounding_error(probe, h / 2) + _drift(probe, h) * found[0][1]
    if not np.isfinite(rounding):
        return None
    truncation = max(abs(d1 - d2), 2 * abs(d2 - d3), 2 * abs(d2 - off))
    if not _smooth(probe, h / 2, scale, rounding) or truncation > ASYMPTOTIC * scale + rounding:
        return None
    tolerance = SAFETY * (truncation + rounding)
    return Estimate(d2, tolerance, scale, probe.realized(h / 2), "central difference", h, h / 2)


@_memo
def rounding_error(probe, h):
    """The rounding error in D(h): the stages' measured noise, the noise seen across the
    steps themselves, the outputs' own rounding at x +- h q, and how far the realized
    direction strays from q (in D(h) - D(h/2) too).
    """
    plus, minus = probe.at(h), probe.at(-h)
    with np.errstate(over="ignore", invalid="ignore"):
        # Each output rounds by eps of max(itself, TINY): subnormals are spaced by eps TINY.
        # Scaled by 1 / h first, so that the allowance itself does not underflow.
        magnitude = np.abs(plus) + np.abs(minus) + 2 * TINY
        outputs = ULPS * EPS / (2 * h) * float((np.abs(probe.gy) * magnitude).sum())
    central = probe.central(h)
    drift = _drift(probe, h) * central[1] if central is not None else np.inf
    noise = max(float(probe.noise().sum()), probe.step_noise(2 * h))
    return noise / h + outputs + drift


@_memo
def _drift(probe, h):
    """The largest relative change that rounding x +- h q makes to an element of q."""
    q = probe.q
    moved = np.abs(probe.realized(h) - q)
    nonzero = q != 0
    return float((moved[nonzero] / np.abs(q[nonzero])).max(initial=0.0))


def _smooth(probe, h, scale, rounding):
    """The one-sided differences at step h agree, or differ as a smooth curvature does.

    Either their gap is within a quarter of D's terms, or it is half the gap at 2h
    within a quarter (near a stationary point the gap is h f'', larger than D). A
    step that aliases an oscillation, or samples noise, fails both.
    """
    gap, wider = probe.gaps(h), probe.gaps(2 * h)
    if gap is None:
        return False
    gap = float(gap.sum())
    if gap <= ASYMPTOTIC * scale + 4 * rounding:
        return True
    if wider is None:
        return False
    return abs(gap - float(wider.sum()) / 2) <= ASYMPTOTIC * gap + 4 * rounding


def _kink(probe, h):
    """True when some output element's one-sided gap keeps its size over four halvings."""
    gaps = [probe.gaps(h * 2.0**-k) for k in (0, 1)]
    if any(g is None for g in gaps):
        return False
    floor = 8 * probe.noise()
    candidate = (gaps[1] > KINK_RATIO * gaps[0]) & (gaps[1] * h / 2 > floor)
    if not chains.anywhere(candidate):
        return False
    for k in (2, 3, 4):
        gap = probe.gaps(h * 2.0**-k)
        if gap is None:
            return False
        candidate &= (gap > KINK_RATIO * gaps[-1]) & (gap * h * 2.0**-k > floor)
        gaps.append(gap)
        if not chains.anywhere(candidate):
            return False
    return True


def _ladder(probe, start):
    """The expensive search below `start` for steps in the asymptotic regime.

    A step is usable where the one-sided differences agree (`_smooth`); a window is
    four consecutive usable steps whose differences D(h) - D(h/2) keep one sign and
    at least halve (or sink into rounding); windows must agree with each other.
    """
    rows, windows = [], []
    noise = float(np.sum(probe.noise()))
    for h in [s for s in LADDER if s <= start]:
        central = probe.central(h)
        rounding = rounding_error(probe, h) if central is not None else np.inf
        usable = (
            central is not None
            and rounding <= DIGIT * central[1]
            and _smooth(probe, h, central[1], rounding)
        )
        rows.append((*central, h) if usable else None)
        window = rows[-4:]
        if len(window) < 4 or None in window or not _converged(window, noise):
            continue
        (d3, _, _), (d4, scale, h4) = window[2], window[3]
        off = probe.central(h4 * OFF_GRID)
        if off is None or abs(off[0] - d4) > max(abs(d3 - d4), rounding):
            continue  # the window's steps alias an oscillation
        tolerance = SAFETY * (
            abs(d3 - d4) + rounding_error(probe, h4) + rounding_error(probe, 2 * h4)
        )
        windows.append(
            Estimate(d4, tolerance, scale, probe.realized(h4), "central-difference ladder", h4, h4)
        )
        if len(windows) >= CONCLUSIVE and _agree(windows[-CONCLUSIVE:]):
            break
    if not windows:
        valid = sum(probe.at(h) is not None and probe.at(-h) is not None for h in LADDER)
        return Unjudged("overflow or domain edge" if valid < len(LADDER) else "no convergence")
    if not _agree(windows):
        return Unjudged("inconsistent differences")
    return min(windows, key=lambda w: w.tolerance)


def _converged(window, noise):
    deltas = [a[0] - b[0] for a, b in itertools.pairwise(window)]
    for (before, after), (_, _, h) in zip(itertools.pairwise(deltas), window[2:], strict=True):
        slack = 4 * noise / h
        if abs(after) <= slack:
            continue
        if after * before < 0 or abs(after) > 0.5 * abs(before) + slack:
            return False
    _, scale, h = window[-1]
    return abs(deltas[-1]) <= ASYMPTOTIC * scale + 4 * noise / h


def _agree(estimates):
    return all(
        abs(a.value - b.value) <= a.tolerance + b.tolerance
        for a, b in itertools.pairwise(estimates)
    )
