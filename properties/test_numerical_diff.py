"""The design's own property, in the engine's words: for random compositions of Square
and Exp, backprop's gradient matches `engine.numerical_diff` within its own error.

`judge` is that literal check, kept here in one place: bench/numerical_diff_power.py
imports it to measure what it can and cannot see.
"""

from dataclasses import dataclass

import numpy as np
from hypothesis import event, given, reject
from hypothesis import strategies as st

from engine import Variable, as_array, numerical_diff
from strategies.compositions import compose, composition_inputs, compositions, written

EPS = 1e-4  # the seed's step
TRAVERSALS = ("backward", "backward_recursive")
# One ulp relative: numpy's exp is faithful (within 1 ulp), not correctly rounded (1/2 ulp).
ULP = float(np.finfo(np.float64).eps)
# Where rounding alone may move numerical_diff by over 1% of the slopes it sees, it
# measures nothing: such elements are set aside.
SET_ASIDE = 1e-2
# The error terms are first-order estimates; in 60,000 drawn cases the correct engine's
# worst |analytic - numerical| was 1.05 times their sum, so 4 leaves room to spare.
SAFETY = 4.0


@dataclass(frozen=True)
class Verdict:
    """The judge's decision on one input x, elementwise.

    `judged` marks the elements numerical_diff can resolve: finite forward values at
    x +- eps and x +- eps/2, and a rounding error under SET_ASIDE of the slopes it sees.
    It is None, with a `reason`, when numerical_diff cannot run at all (f changes the
    shape). `within` marks the elements that pass: judged ones within tolerance, and
    set-aside ones unless x.grad is not finite where numerical_diff is. It is None, with
    a `reason`, when x.grad is missing or of the wrong shape.
    """

    x: np.ndarray
    eps: float
    traversal: str
    judged: np.ndarray | None
    reason: str = ""
    analytic: np.ndarray | None = None
    numerical: np.ndarray | None = None
    tolerance: np.ndarray | None = None
    within: np.ndarray | None = None

    @property
    def could_judge(self):
        """True when at least one element was judged."""
        return self.judged is not None and bool(self.judged.any())

    @property
    def failed(self):
        """True when numerical_diff ran and x.grad is missing, misshapen or off somewhere."""
        return self.judged is not None and (self.within is None or not self.within.all())

    @property
    def passed(self):
        """True only when some element was judged and none failed: set-asides are no pass."""
        return self.could_judge and not self.failed

    def describe(self, name):
        """A failure message naming the function `name`, the exact input and the values."""
        lines = [
            f"x.grad after y.{self.traversal}() does not match "
            f"numerical_diff(f, x, eps={self.eps}) for f(x) = {name}",
            f"  x         = {_hex(self.x)} (shape {self.x.shape})",
        ]
        if self.reason:
            lines.append(f"  reason    = {self.reason}")
        for label in ("analytic", "numerical", "tolerance", "judged"):
            value = getattr(self, label)
            if value is not None:
                lines.append(f"  {label:<9} = {np.asarray(value).tolist()}")
        if self.within is not None and not self.within.all():
            error = np.abs(np.asarray(self.analytic, dtype=np.float64) - self.numerical)
            i = np.unravel_index(np.argmax(np.where(self.within, -np.inf, error)), self.x.shape)
            lines.append(
                f"  worst     = element {tuple(map(int, i))}: |analytic - numerical| = "
                f"{float(error[i])!r} > tolerance {float(self.tolerance[i])!r}"
            )
        return "\n".join(lines)


def judge(f, x, *, traversal="backward", eps=EPS):
    """Judge x.grad after `y = f(Variable(x)); y.<traversal>()` against
    `numerical_diff(f, Variable(x), eps)`, element by element.

    `f` maps a Variable to a Variable elementwise, as numerical_diff requires (it moves
    every element at once); the traversal seeds y.grad with ones. The tolerance and the
    elements set aside come from forward values only (see `tolerance`), never from the
    backward under test. `x` is not modified. Returns a Verdict; exceptions raised by f or
    its backward propagate.
    """
    x = np.array(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        numerical = numerical_diff(f, Variable(x.copy()), eps)
        half = numerical_diff(f, Variable(x.copy()), eps / 2)
        plus = _values(f(Variable(as_array(x + eps))))
        minus = _values(f(Variable(as_array(x - eps))))
        v = Variable(x.copy())
        y = f(v)
        here = _values(y)
        for name, value in [("numerical_diff", numerical), ("f(x + eps)", plus[-1])]:
            if np.shape(value) != x.shape:
                reason = f"{name} has shape {np.shape(value)}, x has shape {x.shape}"
                return Verdict(x, eps, traversal, judged=None, reason=reason + ": not elementwise")
        rounded, slope = rounding(plus, here, minus, eps=eps)
        finite = np.isfinite(numerical) & np.isfinite(half) & np.isfinite(rounded)
        judged = finite & (rounded <= SET_ASIDE * slope)
        tol = tolerance(numerical, half, rounded, x=x, eps=eps, depth=len(plus))
        getattr(y, traversal)()
        done = {"x": x, "eps": eps, "traversal": traversal, "judged": judged}
        if v.grad is None:
            return Verdict(**done, reason="x.grad is None", numerical=numerical, tolerance=tol)
        analytic = np.asarray(v.grad)
        if analytic.shape != x.shape:
            reason = f"x.grad has shape {analytic.shape}, x has shape {x.shape}"
            return Verdict(**done, reason=reason, numerical=numerical, tolerance=tol)
        error = np.abs(analytic.astype(np.float64) - numerical)
        # No tolerance excuses a gradient that is not finite where numerical_diff is.
        broken = ~np.isfinite(analytic) & np.isfinite(numerical)
        within = np.where(judged, error <= tol, ~broken)
    return Verdict(**done, analytic=analytic, numerical=numerical, tolerance=tol, within=within)


def rounding(plus, here, minus, *, eps):
    """numerical_diff's error from rounding, per element, to first order; and the largest
    one-sided slope of f it sees, for scale.

    `plus`, `here` and `minus` hold each Function's output, input to output, at x + eps,
    x and x - eps. Rounding the value v_k by up to an ulp, u |v_k|, at x +- eps moves the
    quotient by u (|v_k+| + |v_k-|) / (2 eps) times df/dv_k, which the side where v_k
    moves most estimates (at x = 0, square(x) moves one-sided only). Later Functions
    amplify it through df/dv_k: exp(exp(x)) rounds 1 + exp(x) and loses exp(x)'s digits.
    Infinite where the step does not move v_k at all: numerical_diff sees a staircase.
    """
    f_plus, f_here, f_minus = plus[-1], here[-1], minus[-1]
    total = 0.0
    for v_plus, v_here, v_minus in zip(plus, here, minus, strict=True):
        up, down = np.abs(v_plus - v_here), np.abs(v_here - v_minus)
        moved = np.maximum(up, down)
        df = np.where(up >= down, np.abs(f_plus - f_here), np.abs(f_here - f_minus))
        size = ULP * (np.abs(v_plus) + np.abs(v_minus)) / (2 * eps)
        total = total + np.where(moved > 0, size * df / np.where(moved > 0, moved, 1), np.inf)
    slope = np.maximum(np.abs(f_plus - f_here), np.abs(f_here - f_minus)) / eps
    return total, slope


def tolerance(numerical, half, rounded, *, x, eps, depth):
    """numerical_diff's own error at x, per element, times SAFETY; from forward values only.

    `numerical` and `half` are numerical_diff at `eps` and `eps/2`, `rounded` is the
    first result of `rounding`, and `depth` the number of Functions in f. The sum of:
    truncation, from Richardson: the error is c eps^2 + O(eps^4) and the two steps
    differ by 3/4 c eps^2; rounding of the forward values; rounding of x +- eps itself;
    and the analytic side's own rounding, `depth` roundings of a gradient of size
    |numerical| (not |x.grad|: the backward under test does not set its own tolerance).
    """
    size = np.abs(numerical)
    truncation = 4 / 3 * np.abs(numerical - half)
    step = size * (np.spacing(np.abs(x + eps)) + np.spacing(np.abs(x - eps))) / (4 * eps)
    analytic = depth * ULP * size
    return SAFETY * (truncation + rounded + step + analytic)


def _values(y):
    # Each Function's output, input to output: forward values only.
    values = []
    while y.creator is not None:
        values.append(y.data)
        y = y.creator.input
    return values[::-1]


def _hex(x):
    # frompyfunc returns a bare str for a 0-d array.
    hexed = np.frompyfunc(float.hex, 1, 1)(x)
    return hexed.tolist() if isinstance(hexed, np.ndarray) else hexed


# Compositions are drawn first, so the shrinker shortens them before simplifying x.
@given(composition=compositions(), data=st.data())
def test_backprop_matches_numerical_diff(composition, data):
    x = data.draw(composition_inputs(composition), label="x")
    f = compose(composition)
    for traversal in TRAVERSALS:
        verdict = judge(f, x, traversal=traversal)
        if not (verdict.could_judge or verdict.failed):
            event("set aside: numerical_diff resolves no element")
            reject()
        assert verdict.passed, verdict.describe(written(composition))
