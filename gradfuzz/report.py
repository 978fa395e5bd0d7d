"""Writing report.json, report.md and one replay script per finding, atomically."""

import json
import math
import os
import tempfile

from gradfuzz.findings import KINDS, Kind
from gradfuzz.verdicts import Outcome

OK = Outcome.OK

SCHEMA = 1


def _json_safe(value):
    """Non-finite floats as strings, so that strict JSON parsers accept the report."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


# Kinds that a nondeterministic backward produces as a side effect.
_SYMPTOMS_OF_NOISE = {Kind.GRADIENT_MISMATCH, Kind.TRAVERSAL_MISMATCH}


def merge(findings):
    """One finding per (function, kind): the shortest chain wins, then the first property.

    The others' properties are listed under `found_by`. A function whose backward
    is nondeterministic gets that one finding: its mismatches are symptoms.
    """
    noisy = {f["function"] for f in findings if f["kind"] == Kind.NONDETERMINISTIC}
    best = {}

    def rank(f):
        return (len(f["chain"]), f["kind"] in _SYMPTOMS_OF_NOISE, f["property"] or "")

    for f in sorted(findings, key=rank):
        if f["function"] in noisy and f["kind"] in _SYMPTOMS_OF_NOISE:
            f = {**f, "kind": Kind.NONDETERMINISTIC.value}
        key = (f["function"], f["kind"])
        if key in best:
            best[key]["found_by"] = sorted({*best[key]["found_by"], f["property"]})
        else:
            best[key] = {**f, "found_by": [f["property"]]}
    merged = [best[k] for k in sorted(best)]
    for f in merged:
        f["id"] = f"{f['function']}-{f['kind']}".replace(".", "_")
    return merged


def build(functions, findings, *, report_dir, run, rejected=None):
    """The report as a dict: `functions` and `counterexamples` are deterministic, `run` is not.

    `functions` maps a name to {"examples", "properties_run", "properties"}.
    `rejected` maps a function to {reason: count}: the examples its tests set
    aside as kinks, non-convergent differences, overflow or domain edges.
    """
    rejected = rejected or {}
    counterexamples = merge(findings)
    for f in counterexamples:
        f["reproduce"] = f"python {os.path.join(report_dir, 'repro_' + f['id'] + '.py')}"
    kinds = {}
    for f in counterexamples:
        kinds.setdefault(f["function"], []).append(f["kind"])
    rows = [
        {
            "name": name,
            "examples": info["examples"],
            "verdict": verdict(kinds.get(name), info["properties_run"], info["properties"]),
            "properties_run": info["properties_run"],
            "rejected": dict(sorted(rejected.get(name, {}).items())),
        }
        for name, info in sorted(functions.items())
    ]
    complete = all(row["verdict"] != Outcome.NOT_RUN for row in rows)
    complete = complete and all(row["verdict"] != Outcome.PARTIAL for row in rows)
    return _json_safe(
        {
            "schema": SCHEMA,
            "functions": rows,
            "counterexamples": counterexamples,
            "run": {"complete": complete, **run},
        }
    )


def verdict(kinds, properties_run, properties):
    """A Function's verdict: its findings' kinds, else whether every property ran for it."""
    if kinds:
        return f"{Outcome.FAIL}: " + ", ".join(kinds)
    if not properties_run:
        return Outcome.NOT_RUN
    if set(properties) - set(properties_run):
        return Outcome.PARTIAL
    return Outcome.OK


class ReportDirError(ValueError):
    """--report-dir cannot hold a report; the message says why."""


def check_writable(report_dir):
    """Raise ReportDirError unless `report_dir` is, or can be made, a writable directory."""
    if os.path.exists(report_dir) and not os.path.isdir(report_dir):
        raise ReportDirError(f"{report_dir} exists and is not a directory")
    parent = report_dir
    while not os.path.exists(parent):
        parent = os.path.dirname(os.path.abspath(parent))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ReportDirError(f"{parent} is not writable, so {report_dir} cannot hold the report")


def _write(path, text, mode=0o644):
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def write(report, report_dir, replay_sources):
    """Write report.json, report.md and repro_<id>.py under `report_dir`; drop stale replays."""
    os.makedirs(report_dir, exist_ok=True)
    keep = set()
    for f in report["counterexamples"]:
        name = f"repro_{f['id']}.py"
        keep.add(name)
        _write(os.path.join(report_dir, name), replay_script(f, replay_sources), 0o755)
    for stale in os.listdir(report_dir):
        if stale.startswith("repro_") and stale.endswith(".py") and stale not in keep:
            os.remove(os.path.join(report_dir, stale))
    _write(os.path.join(report_dir, "report.json"), json.dumps(report, indent=2) + "\n")
    _write(os.path.join(report_dir, "report.md"), markdown(report))


def _number(value):
    if isinstance(value, float):
        return f"{value:.17g}"
    if isinstance(value, dict) and "values" in value:
        shown = ", ".join(value["values"][:6]) + (", ..." if len(value["values"]) > 6 else "")
        return f"shape {tuple(value['shape'])}: [{shown}]"
    return "-" if value is None else str(value)


def _reasons(rejected):
    return ", ".join(f"{reason}: {n}" for reason, n in rejected.items()) or "-"


def markdown(report):
    """The report for people: a summary table, then one section per finding."""
    lines = ["# Gradient fuzzing report", ""]
    n = len(report["counterexamples"])
    fuzzed = len(report["functions"])
    lines += [
        f"{fuzzed} function{'s' * (fuzzed != 1)} fuzzed, {n} finding{'s' * (n != 1)}.",
        "",
        "| function | examples | verdict | set aside |",
        "| --- | ---: | --- | --- |",
    ]
    lines += [
        f"| {r['name']} | {r['examples']} | {r['verdict']} | {_reasons(r['rejected'])} |"
        for r in report["functions"]
    ]
    for f in report["counterexamples"]:
        lines += [
            "",
            f"## {f['function']}: {f['kind']}",
            "",
            f"{f['explanation']}",
            "",
            f"- meaning: {KINDS[f['kind']]}",
            f"- property: {', '.join(f['found_by'])}",
            f"- chain: `{' -> '.join(f['chain'])}`",
            f"- input x: {_number(f['input'])}",
        ]
        if "upstream_grad" in f:
            lines.append(f"- upstream gy: {_number(f['upstream_grad'])}")
        if "analytic" in f and "tolerance" in f:
            lines += [
                "",
                "| analytic | numerical | abs error | rel error | tolerance |",
                "| ---: | ---: | ---: | ---: | ---: |",
                "| "
                + " | ".join(
                    _number(f[k])
                    for k in ("analytic", "numerical", "abs_error", "rel_error", "tolerance")
                )
                + " |",
            ]
        lines += ["", "Replay:", "", "```", f["reproduce"], "```"]
    return "\n".join(lines) + "\n"


def replay_script(finding, replay_sources):
    """A standalone script that replays `finding` and exits 1 while the bug is still there."""
    sources = {name: replay_sources[name] for name in finding["chain"] if name in replay_sources}
    return (
        "#!/usr/bin/env python\n"
        f'"""Replay of {finding["id"]}: {finding["kind"]} in {finding["function"]}.\n\n'
        "Rebuilds the shrunk chain on the exact input, prints analytic against numerical\n"
        'and exits 1 while the bug is still there, 0 once it is fixed."""\n\n'
        "import sys\n\n"
        f"sys.path.insert(0, {os.path.abspath(os.getcwd())!r})\n"
        f"sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r})\n\n"
        "import json  # noqa: E402\n\n"
        "from gradfuzz.replay import replay  # noqa: E402\n\n"
        f"FINDING = json.loads({json.dumps(finding)!r})\n"
        f"SOURCES = json.loads({json.dumps(sources)!r})\n\n"
        'if __name__ == "__main__":\n'
        "    sys.exit(replay(FINDING, SOURCES))\n"
    )
