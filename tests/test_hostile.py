"""Hostile Functions (examples/hostile.py) cannot end, hang or falsify the run.

One fuzzer run per way of running it: the README's plain command, and `-n 2`.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from fuzzer import EXAMPLES, PROPERTIES, REPO, fuzz

from gradfuzz.findings import Kind

HOSTILE = os.path.join(EXAMPLES, "hostile.py")

EXPECTED = {
    "CachesItsGradient": "gradient_mismatch",
    "CallsOsExit": "exited",
    "CallsSysExit": "exited",
    "HangsInC": "timeout",
    "LeavesAThread": "leaked_thread",
    "MutatesGy": "gy_mutated",
    "RaisesKeyboardInterrupt": "interrupted",
    "ReplacesAlarmHandler": "timeout",
    "ReturnsBool": "invalid_return",
    "ReturnsMatrix": "invalid_return",
    "SwallowsTheTimeout": "timeout",
    "WrongControl": "gradient_mismatch",
    "ZeroesItsOutput": "output_mutated",
}
OK = ["Noisy", "Okay"]

# The hangs are cut short by a per-call limit of 0.5 s: the watchdog ends a stuck worker
# after 4 x 0.5 + 2 s. The per-test limit keeps its default (60 s): Noisy is slow but correct.
ARGS = ["--fuzz-timeout=0.5", "-W", "ignore::PendingDeprecationWarning"]
# On a shared 2-core machine, well above what a run takes (about 30 s).
BOUND_S = 150

RUNS = {"plain": [], "two_workers": ["-n", "2"]}


def _command(report_dir, extra):
    return [
        sys.executable, "-m", "pytest", PROPERTIES, "-p", "no:cacheprovider",
        "--hypothesis-profile=ci", f"--report-dir={report_dir}", "--fuzz", HOSTILE,
        *ARGS, *extra,
    ]  # fmt: skip


def _clean_env():
    # Coverage would trace the fuzzer's processes several times slower (see conftest.py).
    return {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_PROCESS")}


def _fuzz_hostile(tmp_path, extra):
    """(exit code, wall seconds, report, terminal output) of one run on examples/hostile.py."""
    start = time.monotonic()
    done = subprocess.run(
        _command(tmp_path / "reports", extra), cwd=tmp_path, env=_clean_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=BOUND_S,
    )  # fmt: skip
    wall = time.monotonic() - start
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    return done.returncode, wall, report, done.stdout


@pytest.mark.parametrize("extra", RUNS.values(), ids=RUNS.keys())
def test_hostile_functions_cannot_end_hang_or_falsify_the_run(tmp_path, extra):
    code, wall, report, stdout = _fuzz_hostile(tmp_path, extra)
    kinds = {}
    for f in report["counterexamples"]:
        kinds.setdefault(f["function"], []).append(f["kind"])
    # One finding of the right kind on each hostile Function, none on the correct controls.
    assert kinds == {name: [kind] for name, kind in EXPECTED.items()}
    verdicts = {r["name"]: r["verdict"] for r in report["functions"]}
    assert verdicts == {**{n: f"FAIL: {k}" for n, k in EXPECTED.items()}, **dict.fromkeys(OK, "ok")}
    assert all(f["chain"] == [f["function"]] for f in report["counterexamples"])
    assert report["run"]["complete"] is True
    assert report["run"]["finished"] is True
    assert report["run"]["interrupted"] is False
    assert code == pytest.ExitCode.TESTS_FAILED
    assert wall < BOUND_S
    # Noisy's 2,000 lines per forward stay out of the terminal.
    assert stdout.count("forward line") < 10, stdout[-2000:]


def test_a_function_not_selected_by_k_reads_not_run_and_the_run_incomplete(pytester):
    result, report = fuzz(
        pytester, f"{HOSTILE}:Okay", f"{HOSTILE}:WrongControl", args=["-k", "Okay"]
    )
    verdicts = {r["name"]: r["verdict"] for r in report["functions"]}
    assert verdicts == {"Okay": "ok", "WrongControl": "not_run"}
    assert report["run"]["complete"] is False
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_ctrl_c_stops_the_run_and_the_report_says_interrupted(tmp_path):
    # Noisy is slow enough that the run is still going when Ctrl-C comes.
    targets = ["--fuzz", f"{HOSTILE}:Okay", "--fuzz", f"{HOSTILE}:Noisy"]
    command = _command(tmp_path / "reports", [])
    command = [arg for arg in command if arg not in ("--fuzz", HOSTILE)] + targets + ["-v"]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=_clean_env(), start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    report_json = tmp_path / "reports" / "report.json"
    try:
        # The terminal sends SIGINT to the whole foreground process group, workers included.
        for line in process.stdout:
            if "PASSED" in line or "FAILED" in line:
                break  # one test has finished, the others have not
        os.killpg(process.pid, signal.SIGINT)
        code = process.wait(timeout=60)
    finally:
        process.kill()
    report = json.loads(report_json.read_text())
    assert code == pytest.ExitCode.INTERRUPTED
    assert report["run"]["interrupted"] is True
    assert report["run"]["complete"] is False
    assert any(r["verdict"] in ("not_run", "partial") for r in report["functions"])
    assert all(r["verdict"] != "ok" or len(r["properties_run"]) == 4 for r in report["functions"])


EXITS_ON_IMPORT = "import sys\nsys.exit(5)\n"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: ["--fuzz", str(tmp)], "is a directory"),
        (lambda tmp: ["--fuzz", f"{HOSTILE}:"], "the class name after ':' is empty"),
        (lambda tmp: ["--fuzz", _write(tmp / "exits.py", EXITS_ON_IMPORT)], "sys.exit(5)"),
        (lambda tmp: ["--fuzz", HOSTILE, "--report-dir", _write(tmp / "file", "")], "not a dir"),
        (lambda tmp: ["--fuzz", HOSTILE, "--fuzz-timeout", "1e-9"], "watchdog's resolution"),
    ],
    ids=["directory", "empty_class_name", "exits_on_import", "report_dir_is_a_file", "tiny_limit"],
)
def test_a_bad_option_or_target_fails_at_once_with_one_line_and_status_4(tmp_path, make, message):
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", PROPERTIES, "-p", "no:cacheprovider", *make(tmp_path)],
        cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and message in errors[0], done.stderr
    assert "INTERNALERROR" not in done.stdout + done.stderr
    assert time.monotonic() - start < 30  # before any fuzzing


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_the_readme_lists_every_exit_status_and_finding_kind():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as text:
        readme = text.read()
    for kind in Kind:
        assert f"| finding `{kind}` |" in readme
    for code in range(6):
        assert f"| exit {code} |" in readme
