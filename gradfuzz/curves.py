"""What a finding's report shows beyond its counterexample: the guilty stage and a gradient curve.

Both are computed where the finding is made, in the process that runs user code
(an isolated worker under --fuzz), once per failed test, from the finding's own
exact case. The report writer only reads the numbers stored here.
"""

import contextlib

import numpy as np
from hypothesis.errors import UnsatisfiedAssumption

from gradfuzz import graph as chains
from gradfuzz import oracle
from gradfuzz.findings import Finding, Kind, encode

# Points of the curve on each side of the counterexample (t = 0).
HALF_POINTS = 16
# The curve spans t in [-SPAN * max(1, |x| on the direction), +...].
SPAN = 2.0
# Kinds whose finding is about backward's gradient along a direction: they get a curve.
CURVE_KINDS = {Kind.GRADIENT_MISMATCH, Kind.NONFINITE_GRADIENT}
# Kinds about a Function's forward or backward at one stage of the chain: they get stages.
STAGE_KINDS = CURVE_KINDS | {
    Kind.BACKWARD_RAISED,
    Kind.WRONG_SHAPE,
    Kind.WRONG_DTYPE,
    Kind.INVALID_RETURN,
    Kind.GY_MUTATED,
    Kind.OUTPUT_MUTATED,
    Kind.NONDETERMINISTIC,
    Kind.TRAVERSAL_MISMATCH,
    Kind.STATEFUL_BACKWARD,
}


def stages(chain, x, gy, function):
    """Each stage of `chain` where `function` runs: its index, input, upstream gradient, output.

    `chain` is a sequence of Specs, `x` the chain's input and `gy` the upstream
    gradient of the chain's output. A value that cannot be computed (forward
    or backward misbehaves before reaching the stage) is None. Returns [] when
    forward does not get through the chain.
    """
    try:
        graph = chains.build(chain, x)
    except Finding:
        return []
    # When backward fails, the gradients above the culprit are set; the others stay None.
    with contextlib.suppress(Finding, UnsatisfiedAssumption):
        chains.backprop(graph, gy)
    found = []
    for i, spec in enumerate(chain):
        if spec.name == function:
            found.append(
                {
                    "index": i,
                    "input": encode(graph.variables[i].data),
                    "upstream_grad": encode(graph.variables[i + 1].grad),
                    "output": encode(graph.variables[i + 1].data),
                }
            )
    return found


def direction(x, d, elements=None):
    """The line's direction p: d on the localized elements (all when None), max |p| = 1."""
    p = np.array(d, dtype=np.float64, copy=True)
    if elements:
        mask = np.zeros(p.shape, dtype=bool)
        for index in elements:
            mask[tuple(index)] = True
        p = np.where(mask, p, 0.0)
    top = float(np.max(np.abs(p))) if p.size else 0.0
    return p / top if top > 0 else p


def curve(chain, x, gy, p):
    """Analytic and numerical <gy, J p> along x + t p, for t on a symmetric grid around 0.

    Returns {"t", "analytic", "numerical", "tolerance", "unjudged"}: lists of
    floats (None where a value does not exist), and for each t the oracle's
    reason for not judging there, or None where it judged. The numerical values
    come from forward alone (the oracle); the analytic ones from backward.
    """
    x = np.asarray(x, dtype=np.float64)
    on_line = np.abs(x[p != 0]) if np.any(p != 0) else np.abs(x).ravel()
    reach = SPAN * max(1.0, float(np.max(on_line)) if on_line.size else 1.0)
    ts = [reach * k / HALF_POINTS for k in range(-HALF_POINTS, HALF_POINTS + 1)]
    out = {"t": ts, "analytic": [], "numerical": [], "tolerance": [], "unjudged": []}
    for t in ts:
        a, n, tol, why = _point(chain, x + t * p, gy, p)
        out["analytic"].append(a)
        out["numerical"].append(n)
        out["tolerance"].append(tol)
        out["unjudged"].append(why)
    return out


def _finite(value):
    return float(value) if value is not None and np.isfinite(value) else None


def _point(chain, xt, gy, p):
    """(analytic, numerical, tolerance, reason not judged or None) at one point of the line."""
    try:
        graph = chains.build(chain, xt)
    except Finding as f:
        return None, None, None, f"forward: {f.kind}"
    if not graph.valid() or graph.y.data.shape != np.shape(gy):
        return None, None, None, "outside the domain"
    try:
        g = np.asarray(chains.backprop(graph, gy), dtype=np.float64)
    except Finding as f:
        g, analytic_failed = None, f"backward: {f.kind}"
    except UnsatisfiedAssumption as e:
        g, analytic_failed = None, str(e)
    else:
        analytic_failed = None
    found = oracle.estimate(oracle.Probe(chain, xt, p, gy, graph.y.data))
    if isinstance(found, oracle.Estimate) and not found.significant:
        found = oracle.Unjudged("no significant digit")
    along = found.q if isinstance(found, oracle.Estimate) else p
    with np.errstate(all="ignore"):
        analytic = None if g is None else _finite(np.sum(g * along))
    if isinstance(found, oracle.Unjudged):
        return analytic, None, None, found.reason
    return analytic, _finite(found.value), _finite(found.tolerance), analytic_failed


def enrich(finding, specs):
    """Add `stages` and, for a gradient finding, `curve` to a Finding, from its own case.

    `specs` maps a Function's name to its Spec. Runs user code: call it only
    where user code may run (the process that made the finding).
    """
    if finding.kind not in STAGE_KINDS or finding.input is None:
        return
    if any(name not in specs for name in finding.chain):
        return
    chain = [specs[name] for name in finding.chain]
    x = np.asarray(finding.input)
    gy = finding.numbers.get("upstream_grad")
    if gy is None:
        try:
            gy = np.ones_like(chains.build(chain, x).y.data, dtype=np.float64)
        except Finding:
            return
    if len(chain) > 1:
        finding.numbers["stages"] = stages(chain, x, gy, finding.function)
    d = finding.numbers.get("direction")
    if finding.kind in CURVE_KINDS and d is not None and np.shape(d) == x.shape:
        p = direction(x, d, finding.numbers.get("elements"))
        if np.any(p != 0):
            finding.numbers["curve"] = {"direction": encode(p), **curve(chain, x, gy, p)}
