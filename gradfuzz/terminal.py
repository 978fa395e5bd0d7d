"""What a gradfuzz run prints: one line per finding, a progress line, a closing table.

Only gradfuzz's own runs (--fuzz), in the process that owns the report. Unless
pytest runs verbose (-v), Hypothesis's per-failure blocks, pytest's tracebacks,
its FAILED lines and its per-test letters give way to:

- one line per finding, as soon as a test reports it;
- when the terminal is interactive, a progress line that rewrites itself: the
  Function last heard of, its examples judged so far and its elapsed time;
- a closing table (Function, verdict, kind, chain, report) of every finding and
  every Function not ok, and a line that counts the verdicts and names report.md.
"""

import os
import re
import time

import pytest
from hypothesis import settings

from gradfuzz.findings import Kind
from gradfuzz.report import plural, summary_line
from gradfuzz.verdicts import Outcome


def one_line(text):
    """User text (class names, exception messages) on one line: whitespace runs become spaces."""
    return re.sub(r"\s+", " ", str(text)).strip()


def finding_line(finding, failing=True):
    """The line a finding gets: verdict word, Function, kind, chain and explanation."""
    word = "FAIL" if failing else "note"
    chain = " -> ".join(finding["chain"]) or finding["function"]
    return one_line(
        f"{word} {finding['function']}: {finding['kind']} (chain {chain}): {finding['explanation']}"
    )


def table_rows(report, report_dir):
    """(Function, verdict, kind, chain, report) for every finding and every Function not ok."""
    functions = {row["name"]: row for row in report["functions"]}
    rows = []
    for f in report["counterexamples"]:
        script = os.path.join(report_dir, f"repro_{f['id']}.py")
        row = functions.get(f["function"], {"verdict": "?"})
        # A note (imprecise_gradient) fails nothing unless --fail-on made it a failure.
        verdict = "note" if f["kind"] in row.get("notes", []) else row["verdict"].split(":")[0]
        rows.append((f["function"], verdict, f["kind"], " -> ".join(f["chain"]), script))
    named = {f["function"] for f in report["counterexamples"]}
    markdown = os.path.join(report_dir, "report.md")
    for row in report["functions"]:
        if row["verdict"] != Outcome.OK and row["name"] not in named:
            rows.append((row["name"], row["verdict"], "-", "-", markdown))
    return sorted(rows)


def table(rows, width=None):
    """Rows as aligned columns under a header; cells cut to fit `width` when given."""
    header = ("Function", "verdict", "kind", "chain", "report")
    cells = [header, *[tuple(one_line(c) for c in row) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    if width:
        # The chain column gives way first: it is in the report in full.
        room = width - sum(widths) + widths[3] - 2 * (len(header) - 1)
        widths[3] = max(len("chain"), min(widths[3], room))
    lines = []
    for row in cells:
        shown = [_cut(c, w) for c, w in zip(row, widths, strict=True)]
        lines.append("  ".join(c.ljust(w) for c, w in zip(shown, widths, strict=True)).rstrip())
    return lines


def _cut(text, width):
    return text if len(text) <= width else text[: max(width - 3, 0)] + "..."


class Terminal:
    """gradfuzz's output in one run; a pytest plugin object of the controller (or only) process.

    `session` is the FuzzSession: the terminal reads its options and, at the
    end, the report it built (`session.built`).
    """

    def __init__(self, config, session):
        self.config = config
        self.session = session
        self.verbose = config.get_verbosity() > 0
        self.printed = set()  # (function, kind) already given a line
        self.started = {}  # function -> when its first test started
        self.judged = {}  # function -> examples judged so far
        self.tests = {}  # function -> tests reported
        self.reporter = None
        self.progress = False  # a progress line is on screen
        if not self.verbose and config.option.tbstyle == "auto":
            config.option.tbstyle = "no"  # the one-line findings replace the tracebacks

    @property
    def interactive(self):
        return self.reporter is not None and self.reporter.isatty and not self.verbose

    def pytest_report_header(self, config):
        return [
            f"gradfuzz: profile={settings.get_current_profile_name()} "
            f"functions={len(self.session.specs)} "
            f"timeout={config.getoption('fuzz_timeout'):g}s "
            f"strict={'off' if config.getoption('no_strict') else 'on'} "
            f"report-dir={config.getoption('report_dir')}"
        ]

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session):
        self.reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if self.reporter is not None and not self.verbose:
            self.reporter.reportchars = self.reporter.reportchars.replace("f", "")

    def pytest_report_teststatus(self, report, config):
        """No per-test letter: the finding lines and the progress line say what happens."""
        if self.verbose or (report.when != "call" and not report.failed and not report.skipped):
            return None
        if report.when in ("setup", "teardown") and report.failed:
            return "error", "", ""
        return report.outcome, "", ""

    def pytest_runtest_logstart(self, nodeid, location):
        name = _function_of(nodeid)
        if name is not None:
            self.started.setdefault(name, time.monotonic())
            self._show_progress(name)

    def pytest_runtest_logreport(self, report):
        for key, value in report.user_properties:
            if key != "gradfuzz":
                continue
            name = value["spec"]
            self.tests[name] = self.tests.get(name, 0) + 1
            for function, n in value["counts"].items():
                self.judged[function] = self.judged.get(function, 0) + n
            for finding in value["findings"] + value.get("notes", []):
                self._print_finding(finding)
            self._show_progress(name)

    def _print_finding(self, finding):
        key = (finding["function"], finding["kind"])
        if key in self.printed:
            return
        self.printed.add(key)
        failing = Kind(finding["kind"]) != Kind.IMPRECISE_GRADIENT or bool(
            self.config.getoption("fail_on")
        )
        line = finding_line(finding, failing)
        if self.reporter is None:
            return
        self._erase_progress()
        if self.reporter.isatty:
            line = _cut(line, self.reporter._tw.fullwidth - 1)
        self.reporter.write_line(line, red=failing, yellow=not failing)

    def _show_progress(self, name):
        if not self.interactive:
            return
        elapsed = time.monotonic() - self.started.get(name, time.monotonic())
        total = len(getattr(self.session, "specs", ()))
        line = (
            f"gradfuzz: {name}: {plural(self.judged.get(name, 0), 'example')} judged, "
            f"{plural(self.tests.get(name, 0), 'test')} done, {elapsed:.0f} s "
            f"({len(self.started)} of {plural(total, 'Function')} started)"
        )
        self.reporter.rewrite(_cut(line, self.reporter._tw.fullwidth - 1), erase=True)
        self.progress = True

    def _erase_progress(self):
        if self.progress:
            self.reporter.rewrite("", erase=True)
            self.reporter.rewrite("")
            self.progress = False

    def pytest_terminal_summary(self, terminalreporter):
        self._erase_progress()
        built = getattr(self.session, "built", None)
        if built is None:
            return
        report_dir = self.config.getoption("report_dir")
        terminalreporter.section("gradfuzz")
        rows = table_rows(built, report_dir)
        width = terminalreporter._tw.fullwidth if terminalreporter.isatty else None
        for line in table(rows, width) if rows else []:
            terminalreporter.write_line(line)
        terminalreporter.write_line(summary_line(built), bold=True)
        run = built["run"]
        if not run.get("complete", True):
            why = "some Functions were not run by every property (-k, -x, a dead worker)"
            if run.get("interrupted"):
                why = "interrupted (Ctrl-C)"
            elif run.get("stopped"):
                why = run["stopped"]
            terminalreporter.write_line(f"The run is not complete: {why}.")
        terminalreporter.write_line(f"Report: {os.path.join(report_dir, 'report.md')}")


def _function_of(nodeid):
    """The Function a property test's node id names (`test_gradient[Exp]` -> Exp), or None."""
    match = re.search(r"::test_\w+\[(.+)\]$", nodeid)
    return match.group(1) if match else None
