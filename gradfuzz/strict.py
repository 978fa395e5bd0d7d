"""The strict check: a precise oracle and the analytic's own rounding, for errors near 1e-8.

The directional derivative <g, p> is judged against a precise oracle with a
tolerance from that oracle's own error:
- complex step, Im <gy, f(x + i t p)> / t, which has no subtractive
  cancellation. Its rounding error is a few epsilons of the summed magnitudes
  per stage; its truncation is (t / h)^2 times that of one central difference
  D(h), which is |D(h) - complex step| at most.
- where the chain is not complex-analytic (np.abs, np.maximum, a cast to real
  drop or bend the imaginary part), Richardson extrapolation of central
  differences at larger steps, its error estimated from two extrapolants.
Which one applies is checked on every example, never assumed: the complex step
is used only when it agrees with D(h) to 1e-6, and Richardson only when it
agrees with the passed central-difference check within that check's tolerance.
When the analytic misses, the tolerance also gets the error that rounding of the
values backward reads can cause: backward runs again with every stored value
moved by ULPS epsilons (the textbook tanh backward 1 - y*y loses digits where y
saturates, and is still correct).
"""

from dataclasses import dataclass

import numpy as np

from gradfuzz import graph as chains
from gradfuzz.findings import Finding, Kind
from gradfuzz.oracle import EPS, H0, SAFETY, TINY, ULPS

COMPLEX_STEP = 2.0**-30
RICHARDSON_STEP = 2.0**-10  # about eps^(1/5): balances h^4 truncation against eps / h
AGREE = 1e-6  # how close the complex step must come to D(h) to count as applicable
VOUCH = 1e-3  # D(h) vouches for another oracle only when its rounding is below this, relative
LINEAR = 1e-3  # an imaginary part above this, relative, has left the complex step's linear regime


@dataclass
class Estimate:
    """A precise directional derivative, its error estimate and the method that gave it."""

    value: float
    error: float
    method: str


def complex_step(chain, x, p, gy, t):
    """(Im <gy, f(x + i t p)> / t, sum |gy| |Im f| / t), or None where it cannot be trusted.

    None when forward refuses complex input or warns, or when any stage's
    imaginary part lost bits to underflow or grew out of the linear regime
    (over LINEAR times the stage's real part, or 1).
    """
    try:
        graph = chains.build(chain, x + 1j * t * p)
    except Finding as finding:
        if finding.kind == Kind.TIMEOUT:
            raise
        return None
    if not graph.valid():
        return None
    for v in graph.variables:
        im = np.abs(np.imag(v.data))
        if np.any((im > 0) & (im < TINY / EPS)):
            return None
        if np.any(im > LINEAR * np.maximum(np.abs(np.real(v.data)), 1.0)):
            return None
    im = np.imag(graph.y.data)
    return float(np.sum(gy * im)) / t, float(np.sum(np.abs(gy * im))) / t


def complex_estimate(oracle, depth):
    """The complex-step Estimate where the chain is complex-analytic at x, else None."""
    central = oracle.central(H0)
    if central is None:
        return None
    found = complex_step(oracle.chain, oracle.x, oracle.p, oracle.gy, COMPLEX_STEP)
    if found is None:
        return None
    (value, magnitude), (d, noise) = found, central
    gap, size = abs(value - d), max(abs(value), abs(d))
    if not (4 * noise <= VOUCH * size and gap <= AGREE * size + 4 * noise):
        return None
    error = ULPS * EPS * (depth + 1) * magnitude + (COMPLEX_STEP / H0) ** 2 * (gap + noise)
    return Estimate(value, error, "complex step")


def richardson_estimate(oracle, cheap):
    """A Richardson Estimate consistent with the passed central-difference `cheap`, or None.

    None also when the central difference is too loose to vouch for it (its
    tolerance over 1% of its value).
    """
    if not cheap.tolerance <= 0.01 * abs(cheap.numerical):
        return None
    steps = [oracle.central(RICHARDSON_STEP / 2**k) for k in range(3)]
    if any(s is None for s in steps):
        return None
    (d1, _), (d2, _), (d3, noise) = steps
    r1, r2 = d2 + (d2 - d1) / 3, d3 + (d3 - d2) / 3
    error = abs(r1 - r2) + 2 * noise
    if abs(r2 - cheap.numerical) <= cheap.tolerance + error:
        return Estimate(r2, error, "richardson")
    return None


def analytic_jitter(chain, x, gy, p, g):
    """How far <g, p> moves when every value backward reads is moved by ULPS epsilons."""
    jitter = 0.0
    for sign in (1.0, -1.0):
        graph = chains.build(chain, x)
        for v in graph.variables:
            v.data = v.data * (1 + sign * ULPS * EPS)
        try:
            moved = np.asarray(chains.backprop(graph, gy), dtype=np.float64)
        except Finding:
            return np.inf  # backward cannot take moved values: no strict judgement
        jitter = max(jitter, abs(float(np.sum((moved - g) * p))))
    return jitter if np.isfinite(jitter) else np.inf


def tolerance(estimate, jitter, floor):
    return SAFETY * (estimate.error + jitter) + floor
