"""The fuzzer run end to end on example and throwaway modules, judged by its report."""

import json
import os
import subprocess
import sys

import pytest
from fuzzer import EXAMPLES, REPO, findings_by_function, fuzz

WRONG = [
    "AbsIntegerGradient", "AbsWrongAboveOne", "CosWrongSign", "CubeWrongPower",
    "CumsumWrongDirection", "LogHalfFactor", "LogUsesOutput", "MeanFirstAxis", "ReciprocalSign",
    "ReluInPlace", "SigmoidNaive", "SinForgetsGy", "SinNoisy", "SinSlightlyOff",
    "SoftmaxElementwise", "SoftmaxForgetsSum", "SoftplusCutoff", "SoftplusNaive",
    "SqrtMissingHalf", "SumWrongShape", "TanhCached", "TanhPrecedence",
]  # fmt: skip

CORRECT = [
    "Abs", "Atan", "Cos", "Cube", "Cumsum", "HardTanh", "Log", "Log1p", "LogSumExp", "Mean",
    "Reciprocal", "Relu", "Sigmoid", "Sin", "Softmax", "Softplus", "Sqrt", "SteepExp", "Sum",
    "Tanh",
]  # fmt: skip


def test_every_wrong_example_is_found_and_shrunk_alone(pytester, record_property):
    result, report = fuzz(pytester, os.path.join(EXAMPLES, "wrong.py"), args=["-n", "2"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    shortest = {}
    for f in report["counterexamples"]:
        shortest[f["function"]] = min(shortest.get(f["function"], 99), len(f["chain"]))
    record_property(
        "gradfuzz_summary", f"kill rate on examples/wrong.py: {len(shortest)}/{len(WRONG)} bugs"
    )
    assert sorted(shortest) == WRONG
    assert shortest == {name: 1 for name in WRONG}
    assert [row["name"] for row in report["functions"]] == WRONG
    assert all(row["verdict"].startswith("FAIL") for row in report["functions"])


def test_the_correct_examples_give_no_finding_and_exit_zero(pytester):
    result, report = fuzz(pytester, os.path.join(EXAMPLES, "correct.py"), args=["-n", "2"])
    assert report["counterexamples"] == []
    assert [row["name"] for row in report["functions"]] == CORRECT
    assert all(row["examples"] >= 100 and row["verdict"] == "ok" for row in report["functions"])
    assert result.ret == pytest.ExitCode.OK


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


def test_each_gradient_bug_fails_with_a_shrunk_example(pytester):
    result, report = fuzz(pytester, source=SQUARE_BUGS)
    result.stdout.fnmatch_lines(
        [
            "*gradient_mismatch in SquareForgetsGy (chain SquareForgetsGy)*",
            "*Failing test case*",
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


def test_each_misbehaving_function_gets_exactly_one_finding_of_its_kind(pytester):
    result, report = fuzz(pytester, source=MISBEHAVING, args=["--fuzz-timeout=0.5"])
    kinds = {}
    for f in report["counterexamples"]:
        kinds.setdefault(f["function"], []).append(f["kind"])
    assert kinds == {name: [kind] for name, kind in EXPECTED_KINDS.items()}
    assert "INTERNALERROR" not in result.stdout.str()
    assert "fuzzing/" not in result.stdout.str()  # no traceback from the harness
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_listed_factory_builds_a_class_that_needs_arguments(pytester):
    header = MISBEHAVING.split("class RaisesInForward")[0]
    needs_arguments = "class NeedsArguments" + MISBEHAVING.split("class NeedsArguments")[1]
    factories = "\n    FUZZ_FACTORIES = {NeedsArguments: lambda: NeedsArguments(3)}\n"
    result, report = fuzz(pytester, source=header + needs_arguments + factories)
    assert report["counterexamples"] == []
    [row] = report["functions"]
    assert row["name"] == "NeedsArguments" and row["examples"] > 0
    assert result.ret == pytest.ExitCode.OK


SMALL = """
    import numpy as np
    from engine import Function

    class Tanh(Function):
        def forward(self, x):
            return np.tanh(x)

        def backward(self, gy):
            y = self.output.data
            return 1 - y * y * gy

    class Sin(Function):
        def forward(self, x):
            return np.sin(x)

        def backward(self, gy):
            return np.cos(self.input.data) * gy
"""


def _deterministic_part(report):
    return json.dumps({k: report[k] for k in ("functions", "counterexamples")}, sort_keys=True)


def test_the_report_is_identical_across_runs_and_worker_counts(pytester):
    runs = [
        fuzz(pytester, source=SMALL, args=["-n", "0"])[1],
        fuzz(pytester, source=SMALL, args=["-n", "0"])[1],
        fuzz(pytester, source=SMALL, args=["-n", "2"])[1],
    ]
    assert runs[0]["counterexamples"], "the run must find Tanh's bug"
    assert _deterministic_part(runs[0]) == _deterministic_part(runs[1])
    assert _deterministic_part(runs[0]) == _deterministic_part(runs[2])


def test_the_replay_script_fails_until_the_bug_is_fixed(pytester):
    _, report = fuzz(pytester, source=SMALL)
    [finding] = report["counterexamples"]
    script = pytester.path / "reports" / f"repro_{finding['id']}.py"
    replay = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert replay.returncode == 1, replay.stdout + replay.stderr
    assert "analytic" in replay.stdout and "numerical" in replay.stdout
    module = pytester.path / "throwaway.py"
    module.write_text(module.read_text().replace("1 - y * y * gy", "(1 - y * y) * gy"))
    replay = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert replay.returncode == 0, replay.stdout + replay.stderr


def test_the_markdown_report_has_a_summary_and_a_section_per_finding(pytester):
    _, report = fuzz(pytester, source=SMALL)
    text = (pytester.path / "reports" / "report.md").read_text()
    assert "| Sin | " in text and "| ok |" in text
    assert "## Tanh: gradient_mismatch" in text
    assert report["counterexamples"][0]["reproduce"] in text


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


def test_a_dotted_module_with_a_class_name_is_fuzzed_from_anywhere(pytester):
    pytester.syspathinsert(REPO)
    result, report = fuzz(pytester, "examples.correct:Sin", args=["-p", "no:cacheprovider"])
    assert [row["name"] for row in report["functions"]] == ["Sin"]
    assert result.ret == pytest.ExitCode.OK
