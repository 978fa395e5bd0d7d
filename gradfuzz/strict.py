"""Precise oracles for errors near 1e-8, and backward's own rounding, measured.

- Complex step, Im <gy, f(x + i t q)> / t: no subtractive cancellation, so its
  error is a few epsilons of the summed magnitudes per stage. It is trusted only
  where it is shown to apply at the example: forward accepts complex input without
  warning, no stage's imaginary part underflows or leaves the linear regime, the
  values at t and 2t agree to within their rounding (code that is not analytic,
  such as np.abs or a max, biases the result by O(t) and fails this), and the
  value agrees with the central difference within the latter's tolerance.
- Richardson extrapolation of central differences at steps around eps^(1/5),
  where the complex step does not apply; trusted only when it agrees with the
  central difference within the latter's tolerance.
- Backward's own rounding: forward and backward run again in np.longdouble where
  it is wider than float64. The change of <g, q> is rounding; it joins the
  tolerance when the wider analytic matches the oracle. Where the code returns
  float64 for long double input, the rounding cannot be measured, and the verdict
  says so.
"""

from dataclasses import dataclass

import numpy as np

from gradfuzz import graph as chains
from gradfuzz import oracle
from gradfuzz.findings import Finding, Kind
from gradfuzz.oracle import EPS, HAS_WIDE, NOISE_STEP, SAFETY, TINY, WIDE, Estimate

COMPLEX_STEP = 2.0**-30
RICHARDSON_STEP = 2.0**-10  # about eps^(1/5): balances h^4 truncation against eps / h
# An imaginary part above this, absolute and relative, leaves truncation above 1e-12.
LINEAR = 1e-6
SHRINK = 2.0**-10  # how much smaller the next step is when a stage leaves the linear regime
# numpy's complex kernels are less accurate than its real ones: where the real part of
# the complex forward strays further than this from the real forward, the complex step
# is not trusted (complex log1p near 1e-6 loses digits that real log1p keeps).
COMPLEX_ULPS = 64
# Rounding beyond this many epsilons of the summed terms is more than a correctly
# rounded backward loses: an imprecise_gradient note.
IMPRECISE_ULPS = 2.0**10


def _complex_step(chain, x, q, gy, t):
    """(Im <gy, f(x + i t q)> / t, sum |gy Im f| / t, whether it was linear), or None.

    None where forward refuses complex input, warns, drops the imaginary part, or
    an imaginary part underflows.
    """
    try:
        graph = chains.build(chain, x + 1j * t * q)
    except Finding as finding:
        if finding.kind == Kind.TIMEOUT:
            raise
        return None
    if not graph.valid():
        return None
    linear = True
    for v in graph.variables:
        if not np.iscomplexobj(v.data):
            return None
        im = np.abs(np.imag(v.data))
        if chains.anywhere((im > 0) & (im < TINY / EPS)):
            return None
        linear = linear and not chains.anywhere(
            im > LINEAR * np.minimum(np.abs(np.real(v.data)), 1.0)
        )
    terms = gy * np.imag(graph.y.data) / t
    return float(terms.sum()), float(np.abs(terms).sum()), linear, np.real(graph.y.data)


def _linear_step(chain, x, q, gy):
    """The largest step t = COMPLEX_STEP * SHRINK^k whose values at t and 2t stay linear."""
    t = COMPLEX_STEP
    for _ in range(3):
        found = [_complex_step(chain, x, q, gy, s) for s in (t, 2 * t)]
        if None in found:
            return None
        if all(f[2] for f in found):
            return t, found
        t *= SHRINK
    return None


def complex_estimate(probe, cheap, depth):
    """The complex-step Estimate along probe.q where it is shown to apply, else None.

    `cheap` is the central-difference Estimate it must agree with.
    """
    linear = _linear_step(probe.chain, probe.x, probe.q, probe.gy)
    if linear is None:
        return None
    t, ((value, magnitude, _, real), (double, _, _, _)) = linear
    rounding = COMPLEX_ULPS * EPS * (depth + 1) * magnitude
    if not _real_part_agrees(probe, real, depth, t, cheap):
        return None
    # An analytic chain's truncation at 2t is 6 (2t/h)^2 of D(h)'s at most; code that is
    # not analytic biases the value by O(t), which doubles with t.
    truncation = 6 * (2 * t / cheap.step) ** 2 * cheap.tolerance
    if abs(value - double) > 2 * rounding + truncation:
        return None
    if abs(value - cheap.value) > cheap.tolerance + rounding:
        return None
    error = SAFETY * (rounding + abs(value - double) / 3)
    found = Estimate(value, error, magnitude, probe.q, "complex step", t)
    return _sharper(found, cheap)


def _sharper(found, cheap):
    """`found` where it is sharper than the central difference `cheap`, else None.

    Richardson's steps of 2^-10 can span a whole feature (a layer norm of a constant
    row varies on the scale of sqrt(its eps)): an error as large as the value agrees
    with anything, and judges nothing that `cheap` did not.
    """
    return found if found.significant and found.tolerance < cheap.tolerance else None


def complex_noise(probe, estimate):
    """`estimate` with its error widened by the complex step's measured noise, or None.

    Numpy's complex arithmetic can cancel where the real forward does not
    (Im sin(z)/z near 0): the complex step at x moved by NOISE_STEP ulps and back
    gives a second difference that is pure evaluation noise.
    """
    step = NOISE_STEP * EPS * max(oracle.largest_moved(probe.x, probe.q), TINY / EPS)
    reach = float(np.max(np.abs(probe.q), initial=0.0))
    if reach == 0:
        return estimate
    shifts = [step / reach * s for s in (1.0, -1.0)]
    values = []
    for shift in shifts:
        found = _complex_step(probe.chain, probe.x + shift * probe.q, probe.q, probe.gy,
                              estimate.step)  # fmt: skip
        if found is None:
            return None
        values.append(found[0])
    noise = abs(values[0] - 2 * estimate.value + values[1])
    error = estimate.tolerance + 3 * SAFETY * noise
    return Estimate(
        estimate.value, error, estimate.scale, estimate.q, estimate.method, estimate.step
    )


def complex_wide(probe, estimate):
    """`estimate` with its error widened by how far the complex step moves in long double.

    Numpy's complex arithmetic can cancel where the real forward does not (Im of
    sin(z)/z near 0 is t (x cos x - sin x) / x^2): a bias, not noise, that the same
    step in complex long double shows. Unchanged where long double cannot run.
    """
    if not HAS_WIDE:
        return estimate
    found = _complex_step(
        probe.chain, probe.x.astype(WIDE), probe.q.astype(WIDE), probe.gy, estimate.step
    )
    if found is None:
        return estimate
    shift = abs(found[0] - estimate.value)
    error = estimate.tolerance + SAFETY * shift
    return Estimate(
        estimate.value, error, estimate.scale, estimate.q, estimate.method, estimate.step
    )


def _real_part_agrees(probe, real, depth, t, cheap):
    """The complex forward's real part matches the real forward: its kernels are as accurate.

    They differ by t^2 |f''| / 2 in exact arithmetic, a vanishing fraction of the
    central difference's one-sided gap.
    """
    y0 = probe.at(0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        stray = float(np.sum(np.abs(probe.gy * (real - y0))))
        allowed = COMPLEX_ULPS * EPS * (depth + 1) * float(np.sum(np.abs(probe.gy * y0)))
        gaps = probe.gaps(cheap.step)
        curvature = float(np.sum(gaps)) * t**2 / cheap.step if gaps is not None else np.inf
    return stray <= allowed + curvature


def richardson_estimate(probe, cheap):
    """A Richardson Estimate consistent with the central-difference `cheap`, or None.

    Its steps must be asymptotic: D(h) - D(h/2) is 2 to 8 times D(h/2) - D(h/4) (4 for
    an h^2 error), unless the latter is within rounding.
    """
    steps = [RICHARDSON_STEP / 2**k for k in range(3)]
    found = [probe.central(h) for h in steps]
    if any(f is None for f in found):
        return None
    (d1, _), (d2, _), (d3, scale) = found
    rounding = oracle.rounding_error(probe, steps[-1])
    wide, narrow = d1 - d2, d2 - d3
    if abs(narrow) > 2 * rounding and not (wide * narrow > 0 and 2 <= wide / narrow <= 8):
        return None  # the differences do not shrink as h^2: the steps are not asymptotic
    r1, r2 = d2 + (d2 - d1) / 3, d3 + (d3 - d2) / 3
    # Richardson's weights (4/3, -1/3) carry D's rounding over at most 5/3 times.
    error = SAFETY * (abs(r1 - r2) + 2 * rounding)
    # A sharper oracle convicts only where it is sharper with forward's rounding counted in
    # full: the rounding that a long double rerun shows is added, not merged with `error`.
    shift = _wide_shift(probe, steps[1:], r2)
    if shift is not None:
        error += SAFETY * shift
    if abs(r2 - cheap.value) > cheap.tolerance + error:
        return None
    found = Estimate(r2, error, scale, probe.realized(steps[-1]), "richardson", steps[-1])
    return _sharper(found, cheap)


def _wide_shift(probe, steps, value):
    """|the extrapolation from D at `steps` with forward in long double - value|, or None.

    A forward stuck on a few quanta of its output (1 - tanh(x)^2 near x = 15) rounds
    each D by far more than its measured noise, and the extrapolation carries that over;
    only a wider forward at the same points shows it.
    """
    wide = [probe.wide_central(h)[0] for h in steps]
    if any(w is None for w in wide):
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        shift = float(abs(wide[1] + (wide[1] - wide[0]) / 3 - WIDE(value)))
    return shift if np.isfinite(shift) else None


@dataclass
class Rounding:
    """Backward's rounding of <g, q>, measured by a wider rerun, or why it could not be."""

    wide: float | None  # <g, q> from the long double rerun
    amount: float  # |<g, q> - wide|
    magnitude: float  # sum |g_wide q|
    reason: str | None = None
    range: str | None = None  # "overflow" or "underflow" inside backward in float64

    @property
    def lost_digits(self):
        if self.amount == 0 or self.magnitude == 0:
            return 0.0
        return float(np.log10(self.amount / (EPS * self.magnitude)))

    @property
    def imprecise(self):
        return self.amount > IMPRECISE_ULPS * EPS * self.magnitude


class _Heard:
    def __init__(self):
        self.kinds = set()

    def __call__(self, kind, flag):
        self.kinds.add(kind)


def wide_rounding(chain, x, gy, q, analytic):
    """Rerun forward and backward in long double; Rounding of the float64 analytic.

    Backward first runs again in float64 listening for overflow and underflow: an
    error of range is not rounding, and a wider type would hide it.
    """
    heard = _Heard()
    try:
        chains.backprop(chains.build(chain, x), gy, on_range=heard)
    except Finding as finding:
        if finding.kind == Kind.TIMEOUT:
            raise
    if "underflow" in heard.kinds or (
        "overflow" in heard.kinds and _stage_leaves_range(chain, x, gy)
    ):
        return Rounding(None, 0.0, 0.0, "backward's float64 arithmetic hit underflow", "underflow")
    if "overflow" in heard.kinds:
        return Rounding(None, 0.0, 0.0, "backward's float64 arithmetic hit overflow", "overflow")
    if not HAS_WIDE:
        return Rounding(None, 0.0, 0.0, "no type wider than float64 on this platform")
    try:
        g = _staged_wide_backprop(chain, x, gy)
    except Finding as finding:
        if finding.kind == Kind.TIMEOUT:
            raise
        return Rounding(None, 0.0, 0.0, f"the long double rerun failed ({finding.kind})")
    if isinstance(g, str):
        return Rounding(None, 0.0, 0.0, g)
    wide = np.sum(g * q.astype(WIDE))
    magnitude = float(np.sum(np.abs(g * q.astype(WIDE))))
    return Rounding(float(wide), float(abs(np.longdouble(analytic) - wide)), magnitude)


def _stage_leaves_range(chain, x, gy):
    """True when the gradient between two stages, in long double, is outside float64's
    normal range: a chain whose true gradient underflows between stages, not a formula
    that overflows."""
    if not HAS_WIDE or len(chain) < 2:
        return False
    points = [v.data for v in chains.build(chain, x).variables]
    g = np.asarray(gy, dtype=WIDE)
    for spec, a in zip(reversed(chain[1:]), reversed(points[1:-1]), strict=True):
        stage = chains.build((spec,), a.astype(WIDE))
        g = np.asarray(chains.backprop(stage, g), dtype=WIDE)
        size = np.abs(g[g != 0])
        if np.any(size < TINY) or np.any(size > np.finfo(np.float64).max):
            return True
    return False


def _staged_wide_backprop(chain, x, gy):
    """The chain rule in long double at float64's own points, or why it cannot run.

    Each stage's backward runs in long double on the value that stage received in
    the float64 forward, so that an ill-conditioned chain is not moved to another
    point by the wider forward.
    """
    points = [v.data for v in chains.build(chain, x).variables]
    g = np.asarray(gy, dtype=WIDE)
    for spec, a in zip(reversed(chain), reversed(points[:-1]), strict=True):
        stage = chains.build((spec,), a.astype(WIDE))
        if stage.y.data.dtype != WIDE:
            return "forward returned float64 for long double input"
        g = np.asarray(chains.backprop(stage, g))
        if g.dtype != WIDE:
            return "backward returned float64 for long double input"
    return g
