"""Hostile Functions (examples/hostile.py) cannot end, hang or falsify the run.

One fuzzer run per way of running it: the README's plain command, and `-n 2`.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
from fuzzer import EXAMPLES, PROPERTIES, REPO, fuzz, recipe

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
# after 4 x 0.5 + 2 s. The per-test limit keeps its default (plugin.hard_timeout: 300 s under
# the ci profile): Noisy is slow but correct.
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


# Findings of a worker that died: the controller reads the call it was making from its journal.
DEAD_WORKER = ["CallsOsExit", "HangsInC", "ReplacesAlarmHandler", "SwallowsTheTimeout"]


def _recipe(extra):
    """The shared run (tests/fuzzer.py) on hostile.py in one way of running it.

    Its report directory's name has a space, which the replay commands must quote.
    """
    return {"targets": (HOSTILE,), "args": (*ARGS, *extra), "report_dir": "my reports",
            "bound_s": BOUND_S}  # fmt: skip


@pytest.fixture(
    scope="module",
    params=[pytest.param(f"hostile-{way}", marks=recipe(f"hostile-{way}", **_recipe(extra)))
            for way, extra in RUNS.items()],
    ids=RUNS.keys(),
)  # fmt: skip
def hostile(request, shared_runs):
    """One run per way of running it, shared by the assertions below (and by every xdist
    worker): (exit code, wall seconds, report, terminal output, report dir)."""
    run = shared_runs.get(request.param)
    assert run.report is not None, run.output[-3000:] + run.errors[-3000:]
    return run.ret, run.wall, run.report, run.output + run.errors, run.reports


def _finding(report, name):
    [finding] = [f for f in report["counterexamples"] if f["function"] == name]
    return finding


def test_hostile_functions_cannot_end_hang_or_falsify_the_run(hostile):
    code, wall, report, stdout, _ = hostile
    kinds = {}
    for f in report["counterexamples"]:
        kinds.setdefault(f["function"], []).append(f["kind"])
    # One finding of the right kind on each hostile Function, none on the correct controls.
    assert kinds == {name: [kind] for name, kind in EXPECTED.items()}
    verdicts = {r["name"]: r["verdict"] for r in report["functions"]}
    assert verdicts == {**{n: f"FAIL: {k}" for n, k in EXPECTED.items()}, **dict.fromkeys(OK, "ok")}
    # Blame: the chain holds the Function blamed, and never blames the engine's own.
    assert all(f["function"] in f["chain"] for f in report["counterexamples"])
    assert report["run"]["complete"] is True
    assert report["run"]["finished"] is True
    assert report["run"]["interrupted"] is False
    assert code == pytest.ExitCode.TESTS_FAILED
    assert wall < BOUND_S
    # Noisy's 2,000 lines per forward stay out of the terminal.
    assert stdout.count("forward line") < 10, stdout[-2000:]


@pytest.mark.parametrize("name", DEAD_WORKER)
def test_a_dead_workers_finding_names_the_input_it_died_on(hostile, name):
    finding = _finding(hostile[2], name)
    assert finding["input"] is not None and finding["input"]["hex"], finding
    assert finding["stage"] == "forward"  # these end their process in forward
    assert "on the input below" in finding["explanation"]
    # Replayed at report time in a fresh process, whose own death or hang is the failure.
    assert finding["reproduced"] is True, finding


def test_every_hostile_finding_is_reproduced_by_a_fresh_process_at_report_time(hostile):
    reproduced = {f["function"]: f["reproduced"] for f in hostile[2]["counterexamples"]}
    assert reproduced == dict.fromkeys(EXPECTED, True)


def test_noisy_output_is_cut_in_the_report_and_kept_whole_in_a_file(hostile):
    _, _, report, _, report_dir = hostile
    [noisy] = [r for r in report["functions"] if r["name"] == "Noisy"]
    output = noisy["output"]
    assert output["bytes"] > 100_000 and len(output["shown"]) <= 500
    assert (report_dir / output["file"]).stat().st_size == output["bytes"]
    markdown = (report_dir / "report.md").read_text()
    assert "forward line 0 of a very chatty Function" in markdown
    assert markdown.count("forward line") <= 8


def _replay(command, **edits):
    """Run a finding's `reproduce` command, with edits to the FINDING it replays if any."""
    args = shlex.split(command)
    if edits:
        script = args[-1]
        with open(script, encoding="utf-8") as text:
            source = text.read().replace('if __name__ == "__main__":', "if False:")
        args[-1] = script.replace(".py", "_edited.py")
        with open(args[-1], "w", encoding="utf-8") as out:
            out.write(source + f"\nFINDING.update({edits!r})\nsys.exit(replay(FINDING, SOURCES))\n")
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=_clean_env())


def test_a_stateful_findings_repro_carries_the_earlier_calls_it_needs(hostile):
    finding = _finding(hostile[2], "CachesItsGradient")
    assert finding["reproduced"] is True
    assert 1 <= len(finding["earlier_calls"]) <= 2, finding["earlier_calls"]
    done = _replay(finding["reproduce"])  # the path has a space: the command quotes it
    assert done.returncode == 1, done.stdout + done.stderr
    assert "earlier backward call" in done.stdout and "still failing" in done.stdout


def test_a_repro_that_cannot_reproduce_standalone_says_so_and_never_fixed(hostile):
    finding = _finding(hostile[2], "CachesItsGradient")
    done = _replay(finding["reproduce"], earlier_calls=[], reproduced=False)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "could not be reproduced standalone" in done.stdout
    assert "fixed" not in done.stdout


@pytest.mark.parametrize("name", ["CallsOsExit", "HangsInC"])
def test_a_dead_workers_repro_fails_while_the_function_still_ends_its_process(hostile, name):
    if hostile[2]["run"]["workers"] != 1:
        pytest.skip("the same scripts as the plain run's")
    done = _replay(_finding(hostile[2], name)["reproduce"])
    assert done.returncode == 1, done.stdout + done.stderr
    assert "still failing" in done.stdout


# The rows a process survives by itself: under -n 0 they must be findings all the same.
SURVIVABLE = ["CallsSysExit", "LeavesAThread", "RaisesKeyboardInterrupt", "WrongControl"]


def test_without_workers_the_survivable_rows_are_findings_and_the_run_still_exits(tmp_path):
    names = [*SURVIVABLE, "Okay"]
    command = _command(tmp_path / "reports", ["-n", "0"])
    command = [arg for arg in command if arg not in ("--fuzz", HOSTILE)]
    command += [arg for name in names for arg in ("--fuzz", f"{HOSTILE}:{name}")]
    start = time.monotonic()
    done = subprocess.run(  # LeavesAThread's thread must not keep the process alive
        command, cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=BOUND_S
    )
    assert time.monotonic() - start < BOUND_S
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout[-2000:]
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    verdicts = {r["name"]: r["verdict"] for r in report["functions"]}
    assert verdicts == {**{n: f"FAIL: {EXPECTED[n]}" for n in SURVIVABLE}, "Okay": "ok"}
    assert report["run"]["finished"] is True and report["run"]["complete"] is True


def test_without_workers_a_hang_in_c_still_ends_the_run_and_the_report_says_where(tmp_path):
    targets = ["--fuzz", f"{HOSTILE}:Okay", "--fuzz", f"{HOSTILE}:HangsInC"]
    command = _command(tmp_path / "reports", ["-n", "0"])
    command = [arg for arg in command if arg not in ("--fuzz", HOSTILE)] + targets
    start = time.monotonic()
    done = subprocess.run(
        command, cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=BOUND_S
    )
    assert time.monotonic() - start < 60  # the watchdog's window is 4 x 0.5 + 2 s
    assert done.returncode != 0
    assert "Timeout" in done.stderr and "hostile.py" in done.stderr  # the stuck stack
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert report["run"]["finished"] is False and report["run"]["complete"] is False
    assert report["run"]["running"].endswith("[HangsInC]")
    assert all(r["verdict"] in ("not_run", "partial") for r in report["functions"])


def test_a_function_not_selected_by_k_reads_not_run_and_the_run_incomplete(pytester):
    result, report = fuzz(
        pytester, f"{HOSTILE}:Okay", f"{HOSTILE}:WrongControl", args=["-k", "Okay"]
    )
    verdicts = {r["name"]: r["verdict"] for r in report["functions"]}
    assert verdicts == {"Okay": "ok", "WrongControl": "not_run"}
    assert report["run"]["complete"] is False
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize("extra", RUNS.values(), ids=RUNS.keys())
def test_ctrl_c_stops_the_run_and_the_report_says_interrupted(tmp_path, extra):
    # Noisy is slow enough that the run is still going when Ctrl-C comes.
    targets = ["--fuzz", f"{HOSTILE}:Okay", "--fuzz", f"{HOSTILE}:Noisy"]
    command = _command(tmp_path / "reports", extra)
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
        rest, _ = process.communicate(timeout=60)  # read on, so that no full pipe blocks it
        code = process.returncode
    finally:
        process.kill()
    report = json.loads(report_json.read_text())
    assert code == pytest.ExitCode.INTERRUPTED, rest[-2000:]
    assert report["run"]["interrupted"] is True
    assert report["run"]["complete"] is False
    # Ctrl-C came when the first chain property ended: no Function can have run all four.
    assert all(r["verdict"] in ("not_run", "partial") for r in report["functions"]), report


EXITS_ON_IMPORT = "import sys\nsys.exit(5)\n"
UNWRITABLE = "/proc/gradfuzz reports"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: ["--fuzz", str(tmp)], "is a directory"),
        (lambda tmp: ["--fuzz", f"{HOSTILE}:"], "the class name after ':' is empty"),
        (lambda tmp: ["--fuzz", _write(tmp / "exits.py", EXITS_ON_IMPORT)], "sys.exit(5)"),
        (lambda tmp: ["--fuzz", HOSTILE, "--report-dir", _write(tmp / "file", "")], "not a dir"),
        # Nothing can be created under /proc, for root too (os.access says yes to root).
        (lambda tmp: ["--fuzz", HOSTILE, "--report-dir", UNWRITABLE], "/proc is not writable"),
        (lambda tmp: ["--fuzz", HOSTILE, "--fuzz-timeout", "1e-9"], "watchdog's resolution"),
    ],
    ids=[
        "directory",
        "empty_class_name",
        "exits_on_import",
        "report_dir_is_a_file",
        "report_dir_unwritable",
        "tiny_limit",
    ],
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
