"""What a gradfuzz run prints, and what its report.md and report.json say of chains."""

import types

import numpy as np
import pytest
from fuzzer import fuzz, recipe

from engine import Function
from gradfuzz import curves, report, terminal
from gradfuzz.registry import FunctionRegistry, default_registry

ONE_BUG = """
    import numpy as np
    from engine import Function

    class SquareWrongBelowZero(Function):
        def forward(self, x):
            return x ** 2

        def backward(self, gy):
            x = self.input.data
            return np.where(x < 0, -2 * x, 2 * x) * gy

    class Sin(Function):
        def forward(self, x):
            return np.sin(x)

        def backward(self, gy):
            return np.cos(self.input.data) * gy
"""

HYPOTHESIS_BLOCKS = [
    "Failing test case",
    "Falsifying example",
    "reproduce_failure",
    "Highest target",
]


QUIET_RUN = recipe("one-bug-quiet", source=ONE_BUG)


@pytest.fixture(scope="module")
def quiet_run(shared_runs):
    """One fuzz of ONE_BUG without -v (a shared run, tests/fuzzer.py): (exit status, stdout
    lines, report, report dir)."""
    run = shared_runs.get("one-bug-quiet")
    assert run.report is not None, run.output[-3000:] + run.errors[-3000:]
    return run.ret, run.output.splitlines(), run.report, run.reports


@QUIET_RUN
def test_each_finding_gets_one_line_and_no_hypothesis_block(quiet_run):
    status, lines, report, _ = quiet_run
    assert status == pytest.ExitCode.TESTS_FAILED
    found = [line for line in lines if line.startswith("FAIL ")]
    assert found == [line for line in found if "SquareWrongBelowZero: gradient_mismatch" in line]
    assert len(found) == len(report["counterexamples"]) == 1
    text = "\n".join(lines)
    for block in HYPOTHESIS_BLOCKS:
        assert block not in text
    assert "FAILED properties" not in text  # pytest's per-test summary gives way too


@QUIET_RUN
def test_the_run_closes_with_a_table_a_count_and_the_report_path(quiet_run):
    _, lines, report, reports = quiet_run
    [finding] = report["counterexamples"]
    header = lines.index(next(line for line in lines if line.startswith("Function ")))
    assert lines[header].split() == ["Function", "verdict", "kind", "chain", "report"]
    row = lines[header + 1].split()
    assert row[:4] == ["SquareWrongBelowZero", "FAIL", "gradient_mismatch", "SquareWrongBelowZero"]
    assert row[4] == str(reports / f"repro_{finding['id']}.py")
    assert (
        "2 Functions fuzzed: 1 ok, 1 failed, 0 unverified, 0 partial, 0 not run; 1 finding."
        in lines
    )
    assert f"Report: {reports / 'report.md'}" in lines


@QUIET_RUN
def test_the_whole_output_fits_on_a_screen_plus_a_line_per_finding(quiet_run):
    _, lines, report, _ = quiet_run
    # pytest's header (with xdist's and pytest-timeout's lines), the table's header and
    # closing lines, pytest's last line: at most 20, then a line and a table row per finding.
    assert len(lines) <= 20 + 2 * len(report["counterexamples"]), "\n".join(lines)


def test_verbose_brings_back_hypothesis_output(pytester):
    result, _ = fuzz(
        pytester, source=ONE_BUG, args=["-k", "test_gradient and not chains"], verbose=True
    )
    result.stdout.fnmatch_lines(["*Failing test case*"])


@QUIET_RUN
def test_report_md_opens_with_counts_profile_and_seed(quiet_run):
    *_, reports = quiet_run
    lines = (reports / "report.md").read_text().splitlines()
    assert (
        lines[2]
        == "2 Functions fuzzed: 1 ok, 1 failed, 0 unverified, 0 partial, 0 not run; 1 finding."
    )
    assert lines[4].startswith("Profile ci, seed 0 (--fuzz-seed; derandomized")


def test_plurals_follow_the_count():
    assert report.plural(1, "Function") == "1 Function"
    assert report.plural(0, "finding") == "0 findings"
    assert report.plural(2, "Function") == "2 Functions"


class _Cutoff(Function):
    """Softplus whose backward is wrong above 15: in a chain, only a large input reaches it."""

    def forward(self, x):
        return np.logaddexp(0.0, x)

    def backward(self, gy):
        x = self.input.data
        return np.where(x > 15, 0.5, 1 / (1 + np.exp(-x))) * gy


def test_a_chain_finding_shows_what_the_guilty_stage_received():
    [exp] = [s for s in default_registry().specs() if s.name == "Exp"]
    cutoff = FunctionRegistry().add(_Cutoff)
    chain = [exp, exp, cutoff]
    x = np.array(1.0)
    [stage] = curves.stages(chain, x, np.array(1.5), "_Cutoff")
    received = float(np.exp(np.exp(1.0)))
    assert stage["index"] == 2
    assert float.fromhex(stage["input"]["hex"][0]) == received
    assert float.fromhex(stage["output"]["hex"][0]) == float(np.logaddexp(0.0, received))
    assert float.fromhex(stage["upstream_grad"]["hex"][0]) == 1.5


def test_the_guilty_stage_reaches_report_md():
    finding = {
        "function": "F",
        "chain": ["Exp", "F"],
        "stages": [
            {
                "index": 1,
                "input": {"shape": [], "values": ["15.15"]},
                "upstream_grad": {"shape": [], "values": ["1.5"]},
                "output": {"shape": [], "values": ["15.15"]},
            }
        ],
    }
    lines = report.stage_lines(finding)
    assert lines[0] == "- at stage 2 of 2 (F):"
    assert "its input: shape (): [15.15]" in lines[1]


class _Reporter:
    """A stand-in for pytest's terminal reporter on an interactive terminal."""

    isatty = True

    def __init__(self):
        self._tw = types.SimpleNamespace(fullwidth=80)
        self.rewritten, self.written = [], []

    def rewrite(self, line, **markup):
        self.rewritten.append(line)

    def write_line(self, line, **markup):
        self.written.append(line)


def _terminal(verbose=0):
    option = types.SimpleNamespace(tbstyle="auto")
    config = types.SimpleNamespace(
        option=option, get_verbosity=lambda: verbose, getoption=lambda name: []
    )
    out = terminal.Terminal(config, session=None)
    out.reporter = _Reporter()
    return out


def _report(name, counts, findings=()):
    value = {"spec": name, "counts": counts, "findings": list(findings), "notes": []}
    return types.SimpleNamespace(user_properties=[("gradfuzz", value)])


def test_an_interactive_terminal_gets_a_progress_line_per_function():
    out = _terminal()
    out.pytest_runtest_logstart("properties/test_properties.py::test_gradient[Sin]", None)
    out.pytest_runtest_logreport(_report("Sin", {"Sin": 60}))
    out.pytest_runtest_logreport(_report("Sin", {"Sin": 40, "Exp": 40}))
    last = out.reporter.rewritten[-1]
    assert last.startswith("gradfuzz: Sin: 100 examples judged, 2 tests done, 0 s")


def test_a_finding_line_erases_the_progress_line_and_is_printed_once():
    out = _terminal()
    finding = {"function": "Sin", "kind": "gradient_mismatch", "chain": ["Exp", "Sin"],
               "explanation": "wrong\nby a lot"}  # fmt: skip
    out.pytest_runtest_logreport(_report("Sin", {"Sin": 1}, [finding]))
    out.pytest_runtest_logreport(_report("Sin", {"Sin": 1}, [finding]))
    assert out.reporter.written == [
        "FAIL Sin: gradient_mismatch (chain Exp -> Sin): wrong by a lot"
    ]


def test_verbose_runs_keep_pytests_letters_and_tracebacks():
    out = _terminal(verbose=1)
    assert out.config.option.tbstyle == "auto"
    rep = types.SimpleNamespace(when="call", failed=True, skipped=False, outcome="failed")
    assert out.pytest_report_teststatus(rep, None) is None
    assert _terminal().pytest_report_teststatus(rep, None) == ("failed", "", "")


def test_a_note_reads_note_in_the_closing_table_even_on_a_failing_function():
    # Found from outside: a Function failing for a mismatch showed its imprecise_gradient
    # note as a second FAIL row.
    report = {
        "functions": [
            {"name": "F", "verdict": "FAIL: gradient_mismatch", "notes": ["imprecise_gradient"]},
            {"name": "G", "verdict": "FAIL: imprecise_gradient"},
        ],
        "counterexamples": [
            {"id": "F-a", "function": "F", "kind": "gradient_mismatch", "chain": ["F"]},
            {"id": "F-b", "function": "F", "kind": "imprecise_gradient", "chain": ["F"]},
            {"id": "G-b", "function": "G", "kind": "imprecise_gradient", "chain": ["G"]},
        ],
    }
    verdicts = {(r[0], r[2]): r[1] for r in terminal.table_rows(report, "out")}
    assert verdicts == {
        ("F", "gradient_mismatch"): "FAIL",
        ("F", "imprecise_gradient"): "note",
        ("G", "imprecise_gradient"): "FAIL",  # --fail-on imprecise
    }
