"""The fuzzer run end to end on example and throwaway modules, judged by its report."""

import json
import os
import subprocess
import sys

import pytest
from fuzzer import EXAMPLES, REPO, findings_by_function, fuzz, recipe

# Each catalogued bug, and the kinds of finding that count as finding it.
MISMATCH = {"gradient_mismatch"}
WRONG = {
    "AbsIntegerGradient": {"wrong_dtype"},
    "AbsWrongAboveOne": MISMATCH,
    "CosWrongSign": MISMATCH,
    "CubeWrongPower": MISMATCH,
    "CumsumWrongDirection": MISMATCH,
    "LogHalfFactor": MISMATCH,
    "LogUsesOutput": MISMATCH,
    "MeanFirstAxis": MISMATCH,
    "ReciprocalSign": MISMATCH,
    "ReluInPlace": {"input_mutated"},
    "SigmoidNaive": {"nonfinite_gradient"},
    "SinForgetsGy": MISMATCH,
    "SinNoisy": {"nondeterministic"},
    "SinSlightlyOff": MISMATCH,
    "SoftmaxElementwise": MISMATCH,
    "SoftmaxForgetsSum": MISMATCH,
    "SoftplusCutoff": MISMATCH,
    "SoftplusNaive": {"nonfinite_gradient"},
    "SqrtMissingHalf": MISMATCH,
    "SumWrongShape": {"wrong_shape"},
    "TanhCached": {"gradient_mismatch", "stateful_backward"},
    "TanhPrecedence": MISMATCH,
}

CORRECT = [
    "Abs", "Atan", "Cos", "Cube", "Cumsum", "HardTanh", "Log", "Log1p", "LogSumExp", "Mean",
    "Reciprocal", "Relu", "Sigmoid", "Sin", "Softmax", "Softplus", "Sqrt", "SteepExp", "Sum",
    "Tanh",
]  # fmt: skip


# The outside catalogues: escapes a harness tuned on the catalogues above let through.
ESCAPES = {
    "AsinhSquareOverflow": MISMATCH,
    # Its error is rounding that a long double rerun explains: a note, not a failure.
    "AtanViaOutput": {"imprecise_gradient", "gradient_mismatch"},
    "CosFlatNearZero": MISMATCH,
    "CubeSharedBuffer": {"stateful_backward"},
    "ExpShiftedOverflow": {"nonfinite_gradient"},
    "LeakyReluSlopeMismatch": MISMATCH,
    "ProdViaDivision": {"nonfinite_gradient"},
    "ReluCapped": MISMATCH,
    "RollAxes": {"wrong_shape", "gradient_mismatch"},
    "SiluDropsTermInTail": MISMATCH,
    "SiluReluMask": MISMATCH,
    "SinAccumulates": {"stateful_backward", "nondeterministic"},
    "SinClipsGy": MISMATCH,
    "SinPiRoundedPi": MISMATCH,
    "SmoothL1ForgetsBeta": MISMATCH,
    "SoftsignAsymptoteTypo": MISMATCH,
    "SquareRescaledGy": {"nonfinite_gradient"},
    "TanhCutoff": MISMATCH,
    "TanhFloat32FastPath": MISMATCH,
}


def killed(report, expected):
    """The bugs found with a finding of an expected kind, each with its shortest chain."""
    shortest = {}
    for f in report["counterexamples"]:
        if f["kind"] in expected.get(f["function"], ()):
            shortest[f["function"]] = min(shortest.get(f["function"], 99), len(f["chain"]))
    return shortest


def _catalogue(shared_runs, name):
    """One fuzz of example modules under the ci profile (tests/fuzzer.py): (status, report)."""
    run = shared_runs.get(name)
    assert run.report is not None, run.output[-6000:]
    return run.ret, run.report


WRONG_RUN = pytest.mark.shared_run("catalogue-wrong-escapes")
CORRECT_RUN = pytest.mark.shared_run("catalogue-correct-awkward")


@pytest.fixture
def wrong_run(shared_runs):
    return _catalogue(shared_runs, "catalogue-wrong-escapes")


@pytest.fixture
def correct_run(shared_runs):
    return _catalogue(shared_runs, "catalogue-correct-awkward")


def _rows(report, names):
    return {row["name"]: row for row in report["functions"] if row["name"] in names}


@WRONG_RUN
def test_every_wrong_example_is_found_and_shrunk_alone(wrong_run, record_property):
    status, report = wrong_run
    assert status == pytest.ExitCode.TESTS_FAILED
    shortest = killed(report, WRONG)
    record_property(
        "gradfuzz_summary", f"kill rate on examples/wrong.py: {len(shortest)}/{len(WRONG)} bugs"
    )
    found = sorted((f["function"], f["kind"], len(f["chain"])) for f in report["counterexamples"])
    assert shortest == {name: 1 for name in WRONG}, found
    assert all(row["verdict"].startswith("FAIL") for row in _rows(report, WRONG).values())


@WRONG_RUN
def test_the_escapes_of_the_outside_catalogue_are_found(wrong_run, record_property):
    _, report = wrong_run
    found = killed(report, ESCAPES)
    record_property(
        "gradfuzz_summary", f"kill rate on examples/escapes.py: {len(found)}/{len(ESCAPES)} bugs"
    )
    assert set(found) == set(ESCAPES)


@CORRECT_RUN
def test_the_correct_and_awkward_examples_fail_nothing(correct_run, record_property):
    status, report = correct_run
    assert {f["kind"] for f in report["counterexamples"]} <= {"imprecise_gradient"}
    correct = _rows(report, CORRECT)
    assert sorted(correct) == CORRECT
    awkward = [row for row in report["functions"] if row["name"] not in correct]
    record_property(
        "gradfuzz_summary",
        f"false alarms on examples/correct.py and awkward.py: 0 of {len(report['functions'])}",
    )
    assert len(awkward) >= 15
    for row in report["functions"]:
        assert row["verdict"] == "ok", row
        assert sum(n for p, n in row["judged"].items() if p.startswith("gradient")) >= 60, row
    assert status == pytest.ExitCode.OK


SQUARE_BUGS = """
    import numpy as np
    from engine import Function

    class SquareForgetsGy(Function):
        def forward(self, x):
            return x ** 2

        def backward(self, gy):
            return 2 * self.input.data

    class SquareWrongBelowZero(Function):
        def forward(self, x):
            return x ** 2

        def backward(self, gy):
            x = self.input.data
            return np.where(x < 0, -2 * x, 2 * x) * gy

    class CumsumBackwards(Function):
        def forward(self, x):
            return np.cumsum(x.ravel()).reshape(x.shape)

        def backward(self, gy):
            return np.cumsum(np.ravel(gy)).reshape(self.input.data.shape)
"""


@recipe("square-bugs", source=SQUARE_BUGS)
def test_each_gradient_bug_fails_with_a_shrunk_example(shared_runs):
    run = shared_runs.get("square-bugs")
    report = run.report
    pytest.LineMatcher(run.output.splitlines()).fnmatch_lines(
        [
            "FAIL SquareForgetsGy: gradient_mismatch (chain SquareForgetsGy)*",
            "*Report: *report.md",
        ]
    )
    found = findings_by_function(report)
    assert sorted(found) == [
        ("CumsumBackwards", "gradient_mismatch"),
        ("SquareForgetsGy", "gradient_mismatch"),
        ("SquareWrongBelowZero", "gradient_mismatch"),
    ]
    below = found["SquareWrongBelowZero", "gradient_mismatch"]
    assert below["chain"] == ["SquareWrongBelowZero"]
    assert all(float.fromhex(h) < 0 for h in below["input"]["hex"])
    cumsum = found["CumsumBackwards", "gradient_mismatch"]
    assert len(cumsum["input"]["hex"]) == 2  # the smallest array a direction bug shows on
    for finding in found.values():
        assert finding["abs_error"] > finding["tolerance"] > 0


MISBEHAVING = """
    import numpy as np
    from engine import Function

    class RaisesInForward(Function):
        def forward(self, x):
            raise ValueError("boom")

        def backward(self, gy):
            return gy

    class RaisesInBackward(Function):
        def forward(self, x):
            return x * 1.0

        def backward(self, gy):
            raise RuntimeError("exploded")

    class ReturnsNone(Function):
        def forward(self, x):
            return None

        def backward(self, gy):
            return gy

    class ReturnsList(Function):
        def forward(self, x):
            return [1.0]

        def backward(self, gy):
            return gy

    class ReturnsString(Function):
        def forward(self, x):
            return "y"

        def backward(self, gy):
            return gy

    class BackwardReturnsNone(Function):
        def forward(self, x):
            return 2.0 * x

        def backward(self, gy):
            return None

    class NanEverywhere(Function):
        def forward(self, x):
            return np.full_like(x, np.nan)

        def backward(self, gy):
            return gy

    class HangsInBackward(Function):
        def forward(self, x):
            return x * 1.0

        def backward(self, gy):
            while True:
                pass

    class NeedsArguments(Function):
        def __init__(self, power):
            self.power = power

        def forward(self, x):
            return x ** self.power

        def backward(self, gy):
            return self.power * self.input.data ** (self.power - 1) * gy
"""

EXPECTED_KINDS = {
    "BackwardReturnsNone": "invalid_return",
    "HangsInBackward": "timeout",
    "NanEverywhere": "no_valid_input",
    "NeedsArguments": "cannot_build",
    "RaisesInBackward": "backward_raised",
    "RaisesInForward": "forward_raised",
    "ReturnsList": "invalid_return",
    "ReturnsNone": "invalid_return",
    "ReturnsString": "invalid_return",
}


@recipe("misbehaving", source=MISBEHAVING, args=("--fuzz-timeout=0.5",))
def test_each_misbehaving_function_gets_exactly_one_finding_of_its_kind(shared_runs):
    result = shared_runs.get("misbehaving")
    report = result.report
    kinds = {}
    for f in report["counterexamples"]:
        kinds.setdefault(f["function"], []).append(f["kind"])
    assert kinds == {name: [kind] for name, kind in EXPECTED_KINDS.items()}
    assert "INTERNALERROR" not in result.output
    assert "fuzzing/" not in result.output  # no traceback from the harness
    assert result.ret == pytest.ExitCode.TESTS_FAILED


_HEADER = MISBEHAVING.split("class RaisesInForward")[0]
_NEEDS_ARGUMENTS = "class NeedsArguments" + MISBEHAVING.split("class NeedsArguments")[1]
_FACTORIES = "\n    FUZZ_FACTORIES = {NeedsArguments: lambda: NeedsArguments(3)}\n"


@recipe("factory", source=_HEADER + _NEEDS_ARGUMENTS + _FACTORIES)
def test_a_listed_factory_builds_a_class_that_needs_arguments(shared_runs):
    result = shared_runs.get("factory")
    report = result.report
    assert report["counterexamples"] == []
    [row] = report["functions"]
    assert row["name"] == "NeedsArguments" and row["examples"] > 0
    assert result.ret == pytest.ExitCode.OK


def _deterministic_part(run):
    """The report's functions and counterexamples, with the run's own directory named RUN
    (each shared run has its own directory; they hold the same files)."""
    report = run.report
    text = json.dumps({k: report[k] for k in ("functions", "counterexamples")}, sort_keys=True)
    return text.replace(str(run.path), "RUN")


# SMALL's three runs (tests/fuzzer.py): isolated (the default, also read by the replay and
# markdown tests), in one process (-n 0), and on two workers.
SMALL_RUNS = ["small", "small-n0", "small-n2"]
SMALL_RUN = pytest.mark.shared_run("small")


@pytest.fixture
def small_run(shared_runs):
    return shared_runs.get("small")


@pytest.mark.shared_run("small")
@pytest.mark.shared_run("small-n0")
@pytest.mark.shared_run("small-n2")
def test_the_report_is_identical_across_runs_and_worker_counts(shared_runs):
    runs = [shared_runs.get(name) for name in SMALL_RUNS]
    assert runs[0].report["counterexamples"], "the run must find Tanh's bug"
    assert "RUN/" in _deterministic_part(runs[0])  # the paths are compared too, run-relative
    assert _deterministic_part(runs[0]) == _deterministic_part(runs[1])
    assert _deterministic_part(runs[0]) == _deterministic_part(runs[2])


@SMALL_RUN
def test_the_replay_script_fails_until_the_bug_is_fixed(small_run):
    [finding] = [f for f in small_run.report["counterexamples"] if f["kind"] == "gradient_mismatch"]
    script = small_run.reports / f"repro_{finding['id']}.py"
    replay = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert replay.returncode == 1, replay.stdout + replay.stderr
    assert "analytic" in replay.stdout and "numerical" in replay.stdout
    # The module is shared with the other readers of this run: fixed here, then restored.
    module = small_run.path / "throwaway.py"
    wrong = module.read_text()
    try:
        module.write_text(wrong.replace("1 - y * y * gy", "(1 - y * y) * gy"))
        replay = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        assert replay.returncode == 0, replay.stdout + replay.stderr
    finally:
        module.write_text(wrong)


@SMALL_RUN
def test_the_markdown_report_has_a_summary_and_a_section_per_finding(small_run):
    text = (small_run.reports / "report.md").read_text()
    assert "| Sin | " in text and "| ok |" in text
    assert "## Tanh: gradient_mismatch" in text
    assert small_run.report["counterexamples"][0]["reproduce"] in text


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nowhere/missing.py", "no such file"),
        ("no_such_module_anywhere", "cannot import module"),
        (os.path.join(EXAMPLES, "correct.py") + ":Missing", "has no attribute 'Missing'"),
        (os.path.join(REPO, "engine", "core.py"), "defines no concrete engine.Function"),
    ],
)
def test_a_bad_target_is_a_usage_error_that_names_it(pytester, target, message):
    result, _ = fuzz(pytester, target)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--fuzz {target}*{message}*"])


@recipe(
    "dotted", targets=("examples.correct:Sin",), args=("-p", "no:cacheprovider"), pythonpath=REPO
)
def test_a_dotted_module_with_a_class_name_is_fuzzed_from_anywhere(shared_runs):
    result = shared_runs.get("dotted")
    report = result.report
    assert [row["name"] for row in report["functions"]] == ["Sin"]
    assert result.ret == pytest.ExitCode.OK
