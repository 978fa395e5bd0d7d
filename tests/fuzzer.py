"""Running the fuzzer in a subprocess on a throwaway module, and reading its report."""

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

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


def unmeasured_env():
    """The environment without coverage's subprocess hooks (see conftest.py)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_PROCESS")}


@dataclass
class Run:
    """One finished fuzzer run: its exit status, terminal output, report and directories."""

    ret: int
    output: str  # stdout
    errors: str  # stderr
    report: dict | None
    path: Path  # holds throwaway.py (when written from source) and the report directory
    reports: Path
    wall: float  # seconds from its launch to its exit


# Catalogued bugs and correct Functions: the runs the kill rates and false alarms come from.
CATALOGUE_SUITE = os.path.join(PROPERTIES, "test_properties.py")

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


def _catalogue(*names):
    return {
        "targets": tuple(os.path.join(EXAMPLES, f"{name}.py") for name in names),
        # pytest-timeout's per-test limit (300 s by default, plugin.hard_timeout) is wall time:
        # on a loaded machine a long shrink must not read as a hang. The hostile tests check
        # the limits.
        "args": ("-q", "--timeout=600"),
        "properties_path": CATALOGUE_SUITE,
    }


# The shared runs. Each runs as the README's main job does, in one isolated worker, unless
# its args say otherwise; test modules add theirs with `recipe`.
RECIPES = {
    "catalogue-wrong-escapes": _catalogue("wrong", "escapes"),
    "catalogue-correct-awkward": _catalogue("correct", "awkward"),
    # SMALL in each way of running it: isolated (the default), in one process, two workers.
    "small": {"source": SMALL},
    "small-n0": {"source": SMALL, "args": ("-n", "0")},
    "small-n2": {"source": SMALL, "args": ("-n", "2")},
}
# The longest runs, which xdist workers start in the background as the session begins, one
# per worker at a time: more at once would slow every run on a 2-core machine.
BACKGROUND = ("catalogue-wrong-escapes", "catalogue-correct-awkward")


def recipe(name, **how):
    """Register the shared run `name` (see `SharedRuns._launch` for `how`); returns the
    mark that says a test reads it, so that xdist workers start it early."""
    if RECIPES.setdefault(name, how) != how:
        raise ValueError(f"name={name!r} is already the name of another shared run")
    return pytest.mark.shared_run(name)


class SharedRuns:
    """Fuzzer runs made once per test session and shared by every test that reads them.

    Each run lives under `root`, a directory that every xdist worker of the session
    sees. The first process to claim a run (by creating its directory) makes it in a
    subprocess; any process asking for it waits for that subprocess's exit status and
    reads the same files, so a run is never made twice, whatever the scheduling.
    `start` makes a run in the background, so that xdist workers can begin the long
    runs at once and go on with other tests meanwhile.
    """

    def __init__(self, root, recipes=None):
        self.root = Path(root)
        self.recipes = RECIPES if recipes is None else recipes
        self.children = []  # the runs this process started, with their directories

    def start(self, name):
        """Begin making the run `name` of `recipes` in the background, unless some process
        already has."""
        path = self.root / name
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            return
        self._launch(path, **self.recipes[name])

    def _launch(
        self, path, targets=(), source=None, args=(), properties_path=PROPERTIES, pythonpath=None,
        report_dir="reports", bound_s=None,
    ):  # fmt: skip
        """`bound_s`: kill the run (its pytest process) after that many seconds of wall time."""
        if source is not None:
            module = path / "throwaway.py"
            module.write_text(textwrap.dedent(source))
            targets = (*targets, str(module))
        command = [
            sys.executable, "-m", "pytest", properties_path, "-p", "no:cacheprovider",
            "-p", "no:randomly", "--hypothesis-profile=ci", f"--report-dir={path / report_dir}",
            *[arg for target in targets for arg in ("--fuzz", target)], *args,
        ]  # fmt: skip
        if bound_s is not None:
            command = ["timeout", "--signal=KILL", str(bound_s), *command]
        (path / "report_dir").write_text(report_dir)
        (path / "started").write_text(repr(time.time()))
        # The exit status is written last, by a rename: once `ret` exists the run is whole.
        script = (
            f"{shlex.join(command)} > output 2> errors;"
            " echo $? > ret.part && date +%s.%N > ended && mv ret.part ret"
        )
        env = unmeasured_env()
        if pythonpath is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
        child = subprocess.Popen(["sh", "-c", script], cwd=path, env=env, start_new_session=True)
        self.children.append((child, path))

    def get(self, name):
        """The finished Run `name`, made now (see `start`) if no process has begun it."""
        self.start(name)
        path = self.root / name
        while not (path / "ret").exists():
            time.sleep(0.1)
        reports = path / (path / "report_dir").read_text()
        started, ended = (float((path / part).read_text()) for part in ("started", "ended"))
        return Run(
            int((path / "ret").read_text()),
            (path / "output").read_text(),
            (path / "errors").read_text(),
            _report(reports / "report.json"),
            path,
            reports,
            ended - started,
        )

    def stop(self, wait=False):
        """Wait for the runs this process started (`wait`), or end those still going (a
        session cut short by -x)."""
        for child, path in self.children:
            if not wait and child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                (path / "errors").write_text("ended by the test session before it finished")
                (path / "ended").write_text(repr(time.time()))
                (path / "ret").write_text("-9")  # nobody waits for it forever
            child.wait()


def _report(path):
    return json.loads(path.read_text()) if path.exists() else None
