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

import properties

PROPERTIES = os.path.dirname(os.path.abspath(properties.__file__))
REPO = os.path.dirname(PROPERTIES)
EXAMPLES = os.path.join(REPO, "examples")


def fuzz(pytester, *targets, source=None, args=(), report_dir="reports"):
    """Fuzz `targets` (or a module written from `source`) under the ci profile.

    Returns (pytest's RunResult, the parsed report.json or None).
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
    """One finished fuzzer run: its exit status, terminal output, report and directory."""

    ret: int
    output: str
    report: dict | None
    path: Path  # holds throwaway.py (when written from source) and reports/

    @property
    def reports(self):
        return self.path / "reports"


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
        "args": ["-q"],
        "properties_path": CATALOGUE_SUITE,
    }


# The shared runs, longest first (xdist workers start them in this order). Each runs as
# the README's main job does, in one isolated worker, unless its args say otherwise.
RECIPES = {
    "catalogue-wrong-escapes": _catalogue("wrong", "escapes"),
    "catalogue-correct-awkward": _catalogue("correct", "awkward"),
    # SMALL in each way of running it: isolated (the default), in one process, two workers.
    "small": {"source": SMALL},
    "small-n0": {"source": SMALL, "args": ["-n", "0"]},
    "small-n2": {"source": SMALL, "args": ["-n", "2"]},
}


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

    def _launch(self, path, targets=(), source=None, args=(), properties_path=PROPERTIES):
        if source is not None:
            module = path / "throwaway.py"
            module.write_text(textwrap.dedent(source))
            targets = (*targets, str(module))
        command = [
            sys.executable, "-m", "pytest", properties_path, "-p", "no:cacheprovider",
            "-p", "no:randomly", "--hypothesis-profile=ci", f"--report-dir={path / 'reports'}",
            *[arg for target in targets for arg in ("--fuzz", target)], *args,
        ]  # fmt: skip
        # The exit status is written last, by a rename: once `ret` exists the run is whole.
        script = f"{shlex.join(command)} > output 2>&1; echo $? > ret.part && mv ret.part ret"
        child = subprocess.Popen(
            ["sh", "-c", script], cwd=path, env=unmeasured_env(), start_new_session=True
        )
        self.children.append((child, path))

    def get(self, name):
        """The finished Run `name`, made now (see `start`) if no process has begun it."""
        self.start(name)
        path = self.root / name
        while not (path / "ret").exists():
            time.sleep(0.1)
        return Run(
            int((path / "ret").read_text()),
            (path / "output").read_text(),
            _report(path / "reports" / "report.json"),
            path,
        )

    def stop(self):
        """End the runs this process started that are still going (a run cut short by -x)."""
        for child, path in self.children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                (path / "output").write_text("ended by the test session before it finished")
                (path / "ret").write_text("-9")  # nobody waits for it forever
            child.wait()


def _report(path):
    return json.loads(path.read_text()) if path.exists() else None
