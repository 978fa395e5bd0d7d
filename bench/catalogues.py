"""Verification power on the outside catalogues, under several fixed seeds of the ci profile.

python -m bench.catalogues [SEEDS] [out.json]   (SEEDS like 0-4; default 0-4)

For each seed, fuzzes examples/escapes.py (wrong Functions written by an outside
tester) and examples/awkward.py (correct ones written to be hard for an oracle)
with `--fuzz-seed N`, and prints, per Function, whether it was found (escapes,
counting only findings of an expected kind) or falsely failed (awkward), with
the judged examples behind each verdict.
"""

import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITE = os.path.join(REPO, "properties", "test_properties.py")
sys.path.insert(0, os.path.join(REPO, "tests"))

from test_fuzzing import ESCAPES  # noqa: E402  (the expected kinds live with the test)


def fuzz(module, seed):
    """The report.json of one ci run of examples/<module>.py with --fuzz-seed `seed`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "reports")
        subprocess.run(
            [sys.executable, "-m", "pytest", SUITE, "-q", "-p", "no:cacheprovider",
             "--hypothesis-profile=ci", f"--fuzz-seed={seed}", "-n", "2",
             f"--report-dir={out}", "--fuzz", os.path.join(REPO, "examples", f"{module}.py")],
            cwd=REPO, capture_output=True, check=False,
        )  # fmt: skip
        with open(os.path.join(out, "report.json")) as f:
            return json.load(f)


def judged(row):
    return sum(n for prop, n in row["judged"].items() if prop.startswith("gradient"))


def measure(seeds):
    results = {"escapes": {}, "awkward": {}}
    for seed in seeds:
        report = fuzz("escapes", seed)
        kinds = {}
        for f in report["counterexamples"]:
            kinds.setdefault(f["function"], set()).add(f["kind"])
        results["escapes"][seed] = {
            name: bool(kinds.get(name, set()) & expected) for name, expected in ESCAPES.items()
        }
        report = fuzz("awkward", seed)
        results["awkward"][seed] = {
            row["name"]: {"verdict": row["verdict"], "judged": judged(row)}
            for row in report["functions"]
        }
    return results


def table(results):
    seeds = sorted(results["escapes"])
    head = "| Function | " + " | ".join(f"seed {s}" for s in seeds) + " |"
    rule = "| --- |" + " :-: |" * len(seeds)
    lines = ["Escapes (x = found with an expected kind):", "", head, rule]
    for name in sorted(ESCAPES):
        marks = " | ".join("x" if results["escapes"][s][name] else "." for s in seeds)
        lines.append(f"| {name} | {marks} |")
    found = [sum(results["escapes"][s].values()) for s in seeds]
    lines.append("| **found** | " + " | ".join(f"{n}/{len(ESCAPES)}" for n in found) + " |")
    lines += ["", "Awkward (ok, or the verdict; judged gradient examples):", "", head, rule]
    for name in sorted(results["awkward"][seeds[0]]):
        cells = []
        for s in seeds:
            row = results["awkward"][s][name]
            cells.append(f"{row['verdict']} ({row['judged']})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    alarms = [
        sum(not r["verdict"].startswith("ok") for r in results["awkward"][s].values())
        for s in seeds
    ]
    lines.append("| **false alarms** | " + " | ".join(str(n) for n in alarms) + " |")
    return "\n".join(lines)


def main(argv):
    spec = next((a for a in argv if "-" in a and a[0].isdigit()), "0-4")
    low, high = (int(v) for v in spec.split("-"))
    results = measure(range(low, high + 1))
    print(table(results))
    path = next((a for a in argv if a.endswith(".json")), None)
    if path:
        with open(path, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main(sys.argv[1:])
