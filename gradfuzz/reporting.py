"""A session's tallies written as the report: a placeholder first, the whole set at the end.

Runs in the process that owns the report (the xdist controller, or the only
process under -n 0); it runs no user code, except through replay.verify's
fresh processes.
"""

import os
import shutil
import time

import pytest
from hypothesis import settings

from gradfuzz import isolation, replay, report


def placeholder(fuzz):
    """Replace an earlier report by a `finished: false` one before any fuzzing.

    A run killed before its end then leaves a report that says so, never an
    older run's report looking current. `fuzz` is the FuzzSession.
    """
    config = fuzz.config
    none = {"examples": 0, "properties_run": [], "properties": []}
    run = {"targets": config.getoption("fuzz"), "finished": False, "interrupted": False}
    built = report.build(
        {s.name: none for s in fuzz.specs},
        [],
        report_dir=config.getoption("report_dir"),
        run=run,
    )
    built["run"]["complete"] = False
    report.write(built, config.getoption("report_dir"), {})


def built(fuzz, session, **entries):
    """The report of what the session has gathered so far, with `entries` in its run."""
    config = session.config
    fuzz._load()
    properties = sorted(fuzz.properties)
    functions = {
        s.name: {
            "examples": fuzz.examples.get(s.name, 0),
            "judged": fuzz.judged.get(s.name, {}),
            "properties_run": sorted(fuzz.ran.get(s.name, ())),
            "properties": properties,
        }
        for s in fuzz.specs
    }
    run = {
        "targets": config.getoption("fuzz"),
        "profile": settings.get_current_profile_name(),
        "fuzz_seed": config.getoption("fuzz_seed"),
        "derandomized": bool(settings.default.derandomize),
        "duration_s": round(time.time() - fuzz.started, 3),
        "cwd": os.getcwd(),
        "workers": getattr(config.option, "numprocesses", None) or 0,
        **entries,
    }
    return report.build(
        functions,
        fuzz.findings,
        report_dir=config.getoption("report_dir"),
        run=run,
        rejected=fuzz.rejected,
        min_judged=config.getoption("min_judged"),
        fail_on=config.getoption("fail_on"),
    )


def checkpoint(fuzz, session, running):
    """Under -n 0, before each test: the report on disk holds every result so far and
    names the test in progress, in case a Function ends or hangs the process there."""
    found = built(fuzz, session, finished=False, interrupted=False, running=running)
    found["run"]["complete"] = False
    report.write(found, session.config.getoption("report_dir"), {})


def final(fuzz, session, exitstatus):
    """Build, verify (replays in fresh processes) and write the report; return it as a dict.

    A run that found nothing wrong but left a Function not ok (unverified, not
    run, partial) gets pytest's TESTS_FAILED exit status.
    """
    config = session.config
    report_dir = config.getoption("report_dir")
    found = built(
        fuzz,
        session,
        finished=True,
        interrupted=exitstatus == pytest.ExitCode.INTERRUPTED,
        stopped=str(session.shouldstop or session.shouldfail or "") or None,
    )
    if found["run"]["interrupted"] or found["run"]["stopped"]:
        found["run"]["complete"] = False
    else:
        output_dir = fuzz._output_dir()
        replay.verify(
            found["counterexamples"],
            fuzz.sources,
            calls=lambda f: isolation.load_calls(output_dir, f),
        )
    # Imported only now: Hypothesis draws constants from every local module loaded, so a
    # module loaded before the tests (in a worker, or under -n 0) would change the ci cases.
    from gradfuzz import html

    files = fuzz._outputs(found)
    report.write(
        found, report_dir, fuzz.sources, files=files, pages={"report.html": html.page(found)}
    )
    if fuzz.output_dir is not None:
        shutil.rmtree(fuzz.output_dir, ignore_errors=True)
    if session.exitstatus == 0 and any(row["verdict"] != report.OK for row in found["functions"]):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    fuzz.exitstatus = session.exitstatus
    return found
