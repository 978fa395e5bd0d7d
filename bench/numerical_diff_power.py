"""What the design's own property can see: the literal judge of
properties/test_numerical_diff.py, backward against `engine.numerical_diff` (eps=1e-4).

a) Sensitivity: Square's or Exp's backward is multiplied by (1 + e), e from 1e-2 down to
   1e-12, and the judge runs on the compositions and inputs the ci profile draws for the
   property (derandomized, so the same every run). An error counts as seen when the judge
   fails some case holding the wrong function; its false alarms on the correct engine are
   counted apart.
b) Reach: each Function of examples/wrong.py that is elementwise (checked on forward
   values) is judged on a fixed grid of inputs, with y.grad seeded with ones as
   backward() does; it is caught when the judge fails on some input.

Prints both tables as Markdown and writes them as JSON to bench/numerical_diff_power.json,
or to the path given as the first argument. Run from the checkout:
python -m bench.numerical_diff_power
"""

import importlib.util
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
from hypothesis import Phase, given, reject, settings
from hypothesis import strategies as st

from engine import Exp, Function, Square, Variable
from properties.test_numerical_diff import EPS, TRAVERSALS, judge
from strategies.compositions import compose, composition_inputs, compositions

REPO = Path(__file__).resolve().parents[1]
WRONG = REPO / "examples" / "wrong.py"  # imported by path: the catalogue may move
JUDGE = "numerical_diff (eps=" + f"{EPS:.0e}".replace("e-0", "e-") + ")"
ERRORS = [10.0**-k for k in range(2, 13)]
INJECTED = {"Square": Square, "Exp": Exp}
CASES = 60  # the ci profile's max_examples
# The harness's notable values and anchors, less 0 and values within eps of it: there
# numerical_diff straddles the kinks of abs and relu and flags their correct versions too.
GRID = [-745.0, -710.0, -709.0, -3.5, -3.0, -1.0, -0.5, -0.1, 1e-3, 0.1, 0.25, 0.5, 1.0]
GRID += [1.5, 2.0, 3.0, 10.0, 700.0, 709.0, 710.0]


def drawn_cases():
    """The (composition, x) cases the ci profile draws for the property, set-asides excluded."""
    drawn = []

    @settings(
        max_examples=CASES, derandomize=True, database=None, deadline=None, phases=[Phase.generate]
    )
    @given(composition=compositions(), data=st.data())
    def collect(composition, data):
        x = data.draw(composition_inputs(composition))
        verdict = judge(compose(composition), x)
        if not (verdict.could_judge or verdict.failed):  # as the property does
            reject()
        drawn.append((composition, x))

    collect()
    return drawn


def failing(composition, x):
    """True when the judge fails the case under either traversal."""
    f = compose(composition)
    verdicts = (judge(f, x, traversal=t) for t in TRAVERSALS)
    return any(v.failed for v in verdicts)


@contextmanager
def injected(cls, error):
    """`cls.backward` returns (1 + error) times its gradient inside the block."""
    right = cls.backward
    with mock.patch.object(cls, "backward", lambda self, gy: right(self, gy) * (1 + error)):
        yield


def sensitivity(drawn):
    rows = []
    for name, cls in INJECTED.items():
        holding = [(c, x) for c, x in drawn if any(h.__name__ == name.lower() for h in c)]
        caught = {}
        for e in ERRORS:
            with injected(cls, e):
                caught[f"{e:.0e}"] = sum(failing(c, x) for c, x in holding)
        seen = [e for e in ERRORS if caught[f"{e:.0e}"]]
        rows.append(
            {
                "function": name,
                "cases": len(holding),
                "false_alarms": sum(failing(c, x) for c, x in holding),
                "caught": caught,
                "smallest_seen": f"{min(seen):.0e}" if seen else None,
            }
        )
    return rows


def load_wrong(path=WRONG):
    """The Function classes defined in the catalogue at `path`, in source order."""
    spec = importlib.util.spec_from_file_location("wrong_catalogue", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [
        cls
        for cls in vars(module).values()
        if isinstance(cls, type) and issubclass(cls, Function) and cls.__module__ == module.__name__
    ]


def grid(cls):
    lo, hi = getattr(cls, "domain", (None, None))
    return np.array(
        [x for x in GRID if (lo is None or x > lo + 2 * EPS) and (hi is None or x < hi - 2 * EPS)]
    )


def not_elementwise(cls, x):
    """Why `cls` is not elementwise on x, from forward values only; "" when it is."""
    with np.errstate(all="ignore"):
        y = cls()(Variable(x.copy())).data
        if np.shape(y) != x.shape:
            return f"forward changes the shape {x.shape} to {np.shape(y)}"
        for i in range(x.size):
            moved = x.copy()
            moved[i] += 0.25
            others = np.arange(x.size) != i
            z = cls()(Variable(moved)).data
            if not np.array_equal(z[others], y[others], equal_nan=True):
                return f"moving element {i} moves others"
    return ""


def reach(cls):
    """The judge's verdict on one wrong Function: caught, missed or n/a, with evidence."""
    row = {"bug": cls.__name__}
    x = grid(cls)
    try:
        why = not_elementwise(cls, x)
    except Exception as error:  # a catalogue of bugs: forward itself may be broken
        return {**row, "verdict": "n/a", "evidence": f"forward raised {error!r}"}
    if why:
        return {**row, "verdict": "n/a", "evidence": f"not elementwise: {why}"}

    def f(v):
        return cls()(v)

    judged = 0
    for point in [*map(np.array, x), x]:
        try:
            verdict = judge(f, point)
        except Exception as error:  # a backward that raises is a loud failure: caught
            return {
                **row,
                "verdict": "caught",
                "evidence": f"x={point.tolist()}: backward raised {error!r}",
            }
        judged += int(verdict.judged.sum()) if verdict.judged is not None else 0
        if verdict.failed:
            return {**row, "verdict": "caught", "evidence": _evidence(verdict)}
    elements = int(x.size) * 2
    evidence = f"no failure: {judged} of {elements} elements judged, the rest set aside"
    return {**row, "verdict": "missed", "evidence": evidence}


def _evidence(verdict):
    if verdict.reason:
        return f"x={verdict.x.tolist()}: {verdict.reason}"
    bad = ~verdict.within
    i = np.unravel_index(np.argmax(bad), verdict.x.shape)
    return (
        f"x={float(verdict.x[i])!r}: analytic {float(verdict.analytic[i])!r}, "
        f"numerical {float(verdict.numerical[i])!r}"
    )


def sensitivity_tables(rows):
    lines = [
        f"| injected into | cases | smallest relative error seen: {JUDGE} |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {r['function']} | {r['cases']} | {r['smallest_seen'] or 'none'} |" for r in rows]
    lines += ["", f"| injected into | e | {JUDGE}: cases caught |", "| --- | --- | --- |"]
    for r in rows:
        lines += [f"| {r['function']} | {e} | {n}/{r['cases']} |" for e, n in r["caught"].items()]
        lines.append(f"| {r['function']} | 0 (false alarms) | {r['false_alarms']}/{r['cases']} |")
    return "\n".join(lines)


def reach_table(rows):
    lines = [f"| bug in examples/wrong.py | {JUDGE} | evidence |", "| --- | --- | --- |"]
    lines += [f"| {r['bug']} | {r['verdict']} | {r['evidence']} |" for r in rows]
    caught = sum(r["verdict"] == "caught" for r in rows)
    lines += ["", f"caught by numerical_diff: {caught}/{len(rows)}"]
    return "\n".join(lines)


def main(argv):
    out = Path(argv[1]) if len(argv) > 1 else REPO / "bench" / "numerical_diff_power.json"
    np.random.seed(0)  # SinNoisy's leftover noise comes from numpy's global generator
    drawn = drawn_cases()
    power = sensitivity(drawn)
    wrong = [reach(cls) for cls in load_wrong()]
    print(sensitivity_tables(power), end="\n\n")
    print(reach_table(wrong))
    caught = sum(r["verdict"] == "caught" for r in wrong)
    result = {
        "judge": JUDGE,
        "sensitivity": power,
        "wrong": wrong,
        "caught": caught,
        "bugs": len(wrong),
    }
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv)
