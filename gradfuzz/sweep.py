"""Every binade at once: an elementwise Function judged across its whole input range.

Drawn inputs visit a few hundred values per Function; a formula wrong only for
x > 13, beyond 1e154 or between 690 and 710 can hide between them. For a
Function that is elementwise (checked on the sweep itself, from forward alone),
one forward and one backward over an array that holds every binade of the input
range give every element's gradient at once.

A per-element central difference then ranks the elements by how far backward is
from it. The ranking never judges: the most suspicious elements are judged one at
a time by check_gradient's judge, among NEIGHBOURS elements of the sweep on each
side with the upstream gradient and the direction on that element alone (so a bug
that needs a large array is seen too), else alone. A failure is shrunk to the
smallest input that still fails: the element alone, else the smallest block of
the sweep around it.
"""

import dataclasses
import itertools

import numpy as np
from hypothesis.errors import UnsatisfiedAssumption

from gradfuzz import graph as chains
from gradfuzz.checks import SUBNORMAL, judge_gradient, mismatch
from gradfuzz.verdicts import Status

# Elements judged per sweep, the most suspicious first, out of at most TRIES.
CANDIDATES = 2
TRIES = 8
# A candidate is judged among this many neighbours on each side, so that a bug that
# needs a large array (a fast path above 64 elements) shows.
NEIGHBOURS = 64
# The ranking's central-difference step, relative to max(|x|, smallest normal).
RANK_STEP = 2.0**-20
# Suspicion scores above this all say that backward and the difference share no digit.
SHARES_NOTHING = 0.875
# Ulps of x that must not move forward as much as the ranking's difference sees.
JITTER = 4
# Blocks the sweep is cut into when forward warns on some of its elements.
BLOCKS = 32


def valid_part(chain, x):
    """(the elements of `x` where the chain is finite, inside its domain and silent, its
    Graph), or None when the chain is not elementwise there or no element is left.

    Forward runs on the whole array once, then on each of BLOCKS blocks if it warned.
    """
    x = x[~chains.outside(chain[0].domain, x)]
    if x.size == 0:
        return None
    graph = chains.build(chain, x)
    if graph.y.data.shape != x.shape:
        return None
    kept = np.ones(x.shape, dtype=bool)
    for spec, v in zip(chain, graph.variables, strict=False):
        if v.data.shape != x.shape:
            return None
        kept &= np.isfinite(v.data) & ~chains.outside(spec.domain, v.data)
    kept &= np.isfinite(graph.y.data)
    x = x[kept]
    if x.size == 0:
        return None
    graph = chains.build(chain, x)
    if graph.valid():
        return x, graph
    blocks = [b for b in np.array_split(x, min(BLOCKS, x.size)) if chains.build(chain, b).valid()]
    if not blocks:
        return None
    x = np.concatenate(blocks)
    graph = chains.build(chain, x)
    return (x, graph) if graph.valid() else None


def elementwise(chain, x, y):
    """True when forward on the reversed array and on its two halves gives y's elements.

    numpy's vector loops may round the same value differently by position: a few
    epsilons are allowed.
    """
    if x.size < 2:
        return True
    half = x.size // 2
    pieces = [
        chains.build(chain, x[::-1]).y.data[::-1],
        np.concatenate([chains.build(chain, part).y.data for part in (x[:half], x[half:])]),
    ]
    return all(
        p.shape == y.shape and np.allclose(p, y, rtol=16 * np.finfo(np.float64).eps, atol=0)
        for p in pieces
    )


def central(chain, x, gy, y):
    """Per element, (gy f' by a central difference at RANK_STEP, its rounding noise);
    nan where a point leaves the domain, where the difference has not settled (the
    one-sided differences disagree by more than a quarter, or it moves by more than
    a thousandth when the step halves, beyond rounding), and where moving x by
    JITTER ulps moves forward by as much as the difference sees. Forward only.
    """
    eps = np.finfo(np.float64).eps
    found = []
    for step in (RANK_STEP, RANK_STEP / 2):
        h = step * np.maximum(np.abs(x), np.finfo(np.float64).tiny)
        with np.errstate(all="ignore"):
            up = chains.build(chain, x + h).y.data
            down = chains.build(chain, x - h).y.data
            rounding = 16 * eps * (np.abs(up) + np.abs(down) + np.abs(y))
            smooth = np.abs((up - y) - (y - down)) <= 0.25 * np.abs(up - down) + rounding
            numerical = gy * (up - down) / ((x + h) - (x - h))
            noise = np.abs(gy) * rounding / h
        found.append((np.where(smooth, numerical, np.nan), noise))
    (wide, noise), (narrow, narrow_noise) = found
    h = RANK_STEP * np.maximum(np.abs(x), np.finfo(np.float64).tiny)
    with np.errstate(all="ignore"):
        settled = np.abs(wide - narrow) <= 1e-3 * np.abs(wide) + 2 * (noise + narrow_noise)
        # Forward moves this much when x moves by JITTER ulps: beyond float64's
        # resolution of the function (cos at 1e300), nothing can be screened.
        jitter = np.maximum(
            *(np.abs(chains.build(chain, x * (1 + s * JITTER * eps)).y.data - y) for s in (1, -1))
        )
        significant = np.abs(wide) > 4 * np.abs(gy) * jitter / h
    return np.where(settled & significant, wide, np.nan), noise


def suspicion(g, numerical, noise):
    """Two scores per element, each 0 where backward agrees with the central difference,
    1 where they share nothing, -1 where it cannot be had:

    - |g - gy f'| / (|g| + |gy f'| + noise): the noise damps the gap (tanh near 14,
      whose difference is all noise, still ranks where backward returns 0);
    - (|g - gy f'| - noise) / (|g| + |gy f'|): only the gap beyond the noise counts
      (sigmoid at x = 3e-10, whose difference moves by an ulp of 0.5, must not outrank
      a gap of 2e-4 that the difference resolves).
    """
    with np.errstate(all="ignore"):
        gap, size = np.abs(g - numerical), np.abs(g) + np.abs(numerical)
        scores = (gap / (size + noise), np.maximum(gap - noise, 0.0) / size)
    return tuple(np.where(np.isfinite(score), score, -1.0) for score in scores)


def ranked(score, discrepancy):
    """Element indices, the most suspicious first: by score, all scores above
    SHARES_NOTHING as one, then by the discrepancy |g - gy f'| / |gy|, largest first.

    Many elements share the top score where backward and forward both round to
    nothing (0.5 tanh(x/2) + 0.5 is 0 below x = -40, its true derivative is not): the
    larger discrepancy is the one float64 can still judge.
    """
    with np.errstate(all="ignore"):
        discrepancy = np.where(np.isfinite(discrepancy), discrepancy, 0.0)
    return np.lexsort((-discrepancy, -np.minimum(score, SHARES_NOTHING)))


def _alternating(first, second):
    """The indices of both orders taken in turn, each once."""
    seen, merged = set(), []
    for i in itertools.chain.from_iterable(zip(first, second, strict=True)):
        if i not in seen:
            seen.add(i)
            merged.append(int(i))
    return merged


def check_sweep(case, *, strict=True):
    """Judge `case` (a sweep: x holds every binade) element by element where forward is
    elementwise; returns the passing (judged case, Verdict) pairs, [] when not elementwise.

    Elements whose gy f' is not safely finite and normal are left out first, from
    forward alone. `strict` as in check_gradient.
    The most suspicious elements are judged until CANDIDATES pass, at most TRIES of
    them. Raises the Finding of the smallest failing input.
    """
    chain = case.chain
    graph = case.take_graph() or chains.build(chain, case.x)
    if not graph.valid() or not elementwise(chain, case.x, graph.y.data):
        return []
    numerical, noise = central(chain, case.x, case.gy, graph.y.data)
    with np.errstate(all="ignore"):
        safe = (
            np.isfinite(numerical)
            & (np.abs(numerical) < chains.NEAR_OVERFLOW)
            & (np.abs(numerical) > SUBNORMAL * np.abs(case.gy))
        )
    if not safe.any():
        return []
    case, numerical, noise = _part(case, safe), numerical[safe], noise[safe]
    g = _gradient(case)
    if g is None:
        return []
    damped, beyond = suspicion(g, numerical, noise)
    discrepancy = np.abs(g - numerical) / np.abs(case.gy)
    passed = []
    for i in _alternating(ranked(damped, discrepancy), ranked(beyond, discrepancy))[:TRIES]:
        if damped[i] < 0 or beyond[i] < 0:
            continue
        i = int(i)
        # Among its neighbours (the sweep is sorted: similar magnitudes, so one that
        # underflows in backward does not spoil the judgement), else alone.
        lo, hi = max(i - NEIGHBOURS, 0), min(i + NEIGHBOURS, case.x.size)
        judged = _on_element(case, i, lo, hi)
        verdict = judge_gradient(judged, strict=strict)
        if verdict.status == Status.REJECT:
            lo, hi = i, i + 1
            judged = _alone(case, i)
            verdict = judge_gradient(judged, strict=strict)
        if verdict.status == Status.FAIL:
            raise _smallest_failure(case, i, verdict, lo, hi, strict)
        if verdict.status == Status.PASS:
            passed.append((judged, verdict))
            if len(passed) == CANDIDATES:
                break
    return passed


def _part(case, kept):
    return dataclasses.replace(case, x=case.x[kept], gy=case.gy[kept], d=case.d[kept])


def _gradient(case):
    """backward's gradient over the sweep, or None. A non-finite gradient element is
    examined on halves of the sweep until one is small enough for backprop to tell a
    bug (a Finding, raised) from a true gradient that overflows (None)."""
    try:
        return np.asarray(chains.backprop(chains.build(case.chain, case.x), case.gy))
    except UnsatisfiedAssumption:
        if case.x.size <= 1:
            return None
    for half in np.array_split(np.arange(case.x.size), 2):
        kept = np.zeros(case.x.size, dtype=bool)
        kept[half] = True
        _gradient(_part(case, kept))
    return None


def _on_element(case, i, lo=0, hi=None):
    """The case on x[lo:hi] with gy and the direction on element i alone."""
    x = case.x[lo:hi]
    gy = np.zeros_like(x)
    gy[i - lo] = case.gy[i]
    d = np.zeros_like(x)
    d[i - lo] = 1.0
    return dataclasses.replace(case, x=x, gy=gy, d=d)


def _alone(case, i):
    """The case on element i alone, 0-d."""
    return dataclasses.replace(
        case, x=case.x[i].reshape(()), gy=case.gy[i].reshape(()), d=np.ones(())
    )


def _smallest_failure(case, i, verdict, lo, hi, strict):
    """The Finding on element i alone (0-d) if it fails there, else on the smallest
    block around it, within x[lo:hi] where it failed, that still fails."""
    alone = _alone(case, i)
    found = verdict if hi - lo == 1 else judge_gradient(alone, strict=strict)
    if found.status == Status.FAIL:
        return mismatch(alone, found)
    while hi - lo > 1:
        middle = (lo + hi) // 2
        a, b = (lo, middle) if i < middle else (middle, hi)
        found = judge_gradient(_on_element(case, i, a, b), strict=strict)
        if found.status != Status.FAIL:
            break
        lo, hi, verdict = a, b, found
    verdict = dataclasses.replace(verdict, elements=[[i - lo]])
    return mismatch(_on_element(case, i, lo, hi), verdict)
