"""Running the fuzzer in a subprocess on a throwaway module, and reading its report."""

import json
import os
import textwrap

import properties

PROPERTIES = os.path.dirname(os.path.abspath(properties.__file__))
REPO = os.path.dirname(PROPERTIES)
EXAMPLES = os.path.join(REPO, "examples")


def fuzz(pytester, *targets, source=None, args=(), report_dir="reports", verbose=True):
    """Fuzz `targets` (or a module written from `source`) under the ci profile.

    `verbose` runs pytest with -v, which keeps Hypothesis's own failure blocks
    in the output (some tests read them); without it gradfuzz prints its own
    one line per finding. Returns (pytest's RunResult, the parsed report.json or None).
    """
    if source is not None:
        path = pytester.path / "throwaway.py"
        path.write_text(textwrap.dedent(source))
        targets = (*targets, str(path))
    fuzzed = [arg for target in targets for arg in ("--fuzz", target)]
    result = pytester.runpytest_subprocess(
        PROPERTIES,
        "-p",
        "no:randomly",
        "--hypothesis-profile=ci",
        f"--report-dir={pytester.path / report_dir}",
        *fuzzed,
        *(["-v"] if verbose else []),
        *args,
    )
    path = pytester.path / report_dir / "report.json"
    return result, json.loads(path.read_text()) if path.exists() else None


def findings_by_function(report):
    return {(f["function"], f["kind"]): f for f in report["counterexamples"]}
