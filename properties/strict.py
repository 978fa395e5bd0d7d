"""The strict check: a precise oracle and the analytic's own rounding, for errors near 1e-8.

After the central-difference check passes, the same <g, p> is judged again
against a precise oracle with a tolerance from that oracle's own error:
- complex step, Im <gy, f(x + i t p)> / t, which has no subtractive
  cancellation; its error is estimated by comparing t with t/16, plus rounding
  relative to the summed magnitudes;
- where the chain is not complex-analytic (np.abs, np.maximum, a cast to real
  drop or bend the imaginary part), Richardson extrapolation of central
  differences at larger steps, its error estimated from two extrapolants.
Which one applies is checked on every example, never assumed: an oracle is
used only when it agrees with the central difference within that check's
tolerance. The analytic side gets the error that rounding of the values
backward reads can cause: backward runs again with every stored value moved
by ULPS epsilons, and the change counts toward the tolerance (the textbook
tanh backward 1 - y*y loses digits where y saturates, and is still correct).
"""

from dataclasses import dataclass

import numpy as np

from properties import chain as chains
from properties.findings import Finding
from properties.oracle import EPS, SAFETY, ULPS

COMPLEX_STEP = 2.0**-30
RICHARDSON_STEP = 2.0**-10  # about eps^(1/5): balances h^4 truncation against eps / h


@dataclass
class Estimate:
    """A precise directional derivative, its error estimate and the method that gave it."""

    value: float
    error: float
    method: str


def complex_step(chain, x, p, gy, t):
    """(Im <gy, f(x + i t p)> / t, sum |gy| |Im f| / t), or None where forward refuses complex."""
    try:
        graph = chains.build(chain, x + 1j * t * p)
    except Finding as finding:
        if finding.kind == "timeout":
            raise
        return None
    if not graph.valid():
        return None
    im = np.imag(graph.y.data)
    return float(np.sum(gy * im)) / t, float(np.sum(np.abs(gy * im))) / t


def precise(oracle, cheap, depth):
    """A precise Estimate consistent with the passed central-difference `cheap` Verdict, or None.

    None also when the central difference is too loose to vouch for another
    oracle (its tolerance over 1% of its value).
    """
    consistent = cheap.tolerance
    if not consistent <= 0.01 * abs(cheap.numerical):
        return None
    fine, finer = (
        complex_step(oracle.chain, oracle.x, oracle.p, oracle.gy, COMPLEX_STEP / k) for k in (1, 16)
    )
    if fine is not None and finer is not None:
        error = abs(fine[0] - finer[0]) + ULPS * EPS * (depth + 1) * fine[1]
        if abs(fine[0] - cheap.numerical) <= consistent + error:
            return Estimate(fine[0], error, "complex step")
    steps = [oracle.central(RICHARDSON_STEP / 2**k) for k in range(3)]
    if any(s is None for s in steps):
        return None
    (d1, _), (d2, _), (d3, noise) = steps
    r1, r2 = d2 + (d2 - d1) / 3, d3 + (d3 - d2) / 3
    error = abs(r1 - r2) + 2 * noise
    if abs(r2 - cheap.numerical) <= consistent + error:
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
