"""Which injected relative errors the harness catches, beside two fixed-tolerance checks.

For sin, exp and softmax, backward is multiplied by (1 + e) for e from 1e-3 down
to 1e-12. Every check judges the same 60 inputs: the cases the ci profile draws
for the correct function. A fixed check "detects" e when it flags the wrong
backward on an input where it passes the correct one; its false alarms on the
correct function are counted apart, per input (for gradfuzz, out of the inputs its
oracle could judge).
"""

import json
import sys

from examples.injected import (
    SUBJECTS,
    fixed_check_detects,
    fixed_check_false_alarms,
    generated_cases,
    harness_catches,
    harness_false_alarms,
    inject,
)

ERRORS = [10.0**-k for k in range(3, 14)]
FIXED = {"rtol=1e-3": (1e-3, 1e-5), "rtol=1e-5": (1e-5, 1e-8)}


def measure():
    rows = []
    for name, cls in sorted(SUBJECTS.items()):
        drawn = generated_cases(cls)
        row = {"function": name, "cases": len(drawn), "harness": {}, "false_alarms": {}}
        row["false_alarms"]["harness"], row["judged"] = harness_false_alarms(drawn, cls)
        for label, (rtol, atol) in FIXED.items():
            row[label] = {}
            row["false_alarms"][label] = fixed_check_false_alarms(drawn, cls, rtol=rtol, atol=atol)
        for e in ERRORS:
            row["harness"][f"{e:.0e}"] = harness_catches(drawn, inject(cls, e))
            for label, (rtol, atol) in FIXED.items():
                row[label][f"{e:.0e}"] = fixed_check_detects(drawn, cls, e, rtol=rtol, atol=atol)
        rows.append(row)
    return rows


def table(rows):
    head = "| function | check | " + " | ".join(f"{e:.0e}" for e in ERRORS) + " | false alarms |"
    lines = [head, "| --- | --- |" + " :-: |" * (len(ERRORS) + 1)]
    for row in rows:
        for check in ("harness", *FIXED):  # "harness" is gradfuzz
            marks = " | ".join("x" if row[check][f"{e:.0e}"] else "." for e in ERRORS)
            alarms = row["false_alarms"][check]
            of = row["judged"] if check == "harness" else row["cases"]
            lines.append(f"| {row['function']} | {check} | {marks} | {alarms}/{of} |")
    return "\n".join(lines)


if __name__ == "__main__":
    results = measure()
    print(table(results))
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as out:
            json.dump(results, out, indent=2)
