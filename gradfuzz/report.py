"""Writing report.json, report.md and one replay script per finding, atomically."""

import json
import math
import os
import shlex
import shutil
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
SYMPTOMS_OF_NOISE = {Kind.GRADIENT_MISMATCH, Kind.TRAVERSAL_MISMATCH}


def merge(findings):
    """One finding per (function, kind): the shortest chain wins, then the first property.

    The others' properties are listed under `found_by`. A function whose backward
    is nondeterministic gets that one finding: its mismatches are symptoms.
    """
    noisy = {f["function"] for f in findings if f["kind"] == Kind.NONDETERMINISTIC}
    best = {}

    def rank(f):
        return (len(f["chain"]), f["kind"] in SYMPTOMS_OF_NOISE, f["property"] or "")

    for f in sorted(findings, key=rank):
        if f["function"] in noisy and f["kind"] in SYMPTOMS_OF_NOISE:
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


# The fewest examples a Function's gradient properties must judge for an `ok`.
MIN_JUDGED = 20
# Kinds that are notes, not failures, unless the run asks to fail on them (--fail-on).
NOTES = {Kind.IMPRECISE_GRADIENT: "imprecise"}


def build(
    functions, findings, *, report_dir, run, rejected=None, min_judged=MIN_JUDGED, fail_on=()
):
    """The report as a dict: `functions` and `counterexamples` are deterministic, `run` is not.

    `functions` maps a name to {"examples", "judged", "properties_run", "properties"},
    where "judged" maps a property to the examples it judged. `rejected` maps a
    function to {reason: count}: the examples its tests could not judge (kinks,
    non-convergent differences, overflow, domain edges, no significant digit).
    """
    rejected = rejected or {}
    counterexamples = merge(findings)
    for f in counterexamples:
        script = os.path.join(report_dir, f"repro_{f['id']}.py")
        f["reproduce"] = f"python {shlex.quote(script)}"
    kinds, notes = {}, {}
    for f in counterexamples:
        failing = f["kind"] not in NOTES or NOTES[f["kind"]] in fail_on
        (kinds if failing else notes).setdefault(f["function"], []).append(f["kind"])
    rows = []
    for name, info in sorted(functions.items()):
        judged = dict(sorted(info.get("judged", {}).items()))
        row = {
            "name": name,
            "examples": info["examples"],
            "judged": judged,
            "verdict": verdict(
                kinds.get(name),
                info["properties_run"],
                info["properties"],
                gradient_judged(judged),
                min_judged,
            ),
            "properties_run": info["properties_run"],
            "rejected": dict(sorted(rejected.get(name, {}).items())),
        }
        if name in notes:
            row["notes"] = notes[name]
        rows.append(row)
    complete = all(row["verdict"] not in (Outcome.NOT_RUN, Outcome.PARTIAL) for row in rows)
    return _json_safe(
        {
            "schema": SCHEMA,
            "functions": rows,
            "counterexamples": counterexamples,
            "run": {"complete": complete, "min_judged": min_judged, **run},
        }
    )


def gradient_judged(judged):
    """The examples judged by the gradient properties (the others check bit equality)."""
    return sum(n for prop, n in judged.items() if prop.startswith("gradient"))


def verdict(kinds, properties_run, properties, judged=None, min_judged=0):
    """A Function's verdict: its failing kinds; else not_run, partial or unverified; else ok."""
    if kinds:
        return f"{Outcome.FAIL}: " + ", ".join(kinds)
    if not properties_run:
        return Outcome.NOT_RUN
    if set(properties) - set(properties_run):
        return Outcome.PARTIAL
    gradient_properties = [p for p in properties if p.startswith("gradient")]
    if gradient_properties and judged is not None and judged < min_judged:
        return Outcome.UNVERIFIED
    return Outcome.OK


class ReportDirError(ValueError):
    """--report-dir cannot hold a report; the message says why."""


def check_writable(report_dir):
    """Raise ReportDirError unless `report_dir` is, or can be made, a writable directory."""
    if os.path.lexists(report_dir) and not os.path.isdir(report_dir):
        raise ReportDirError(f"{report_dir} exists and is not a directory")
    # The new set is written beside report_dir and swapped in: its parent must be writable.
    parent = os.path.dirname(os.path.abspath(report_dir))
    while not os.path.exists(parent):
        parent = os.path.dirname(os.path.abspath(parent))
    # Try it: os.access says yes to root everywhere, and to anyone on /proc, where nothing
    # can be created.
    try:
        os.rmdir(tempfile.mkdtemp(dir=parent, prefix=".gradfuzz-probe-"))
    except OSError as e:
        raise ReportDirError(
            f"{parent} is not writable ({e.strerror}), so {report_dir} cannot hold the report"
        ) from None


def _write(path, text, mode=0o644):
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(path, mode)


def write(report, report_dir, replay_sources, files=None, pages=None):
    """Replace the whole set of report files under `report_dir` at once.

    The set is report.json, report.md, repro_<id>.py per finding, the files
    of `files` ({name: path to copy}) and the texts of `pages` ({name: text}).
    `report_dir` is a symlink to a versioned sibling directory,
    `.<name>.<random>`: the new set is written and synced into a fresh
    sibling, a temporary symlink to it replaces `report_dir` by os.replace (an
    atomic rename), and only then is the old sibling removed. A kill at any
    moment therefore leaves `report_dir` naming one whole set, old or new;
    siblings left over by a kill are removed by the next write. A
    `report_dir` that is still a real directory (an older gradfuzz's) is moved
    aside to `.<name>.old-<random>` first and swapped the same way; a kill in
    between leaves the old set there, and the next write puts it back first.
    """
    parent, name = os.path.split(os.path.abspath(report_dir))
    os.makedirs(parent, exist_ok=True)
    _recover(parent, name)
    new = tempfile.mkdtemp(dir=parent, prefix=f".{name}.")
    for f in report["counterexamples"]:
        path = os.path.join(new, f"repro_{f['id']}.py")
        _write(path, replay_script(f, replay_sources), 0o755)
    for target, source in (files or {}).items():
        shutil.copyfile(source, os.path.join(new, target))
    _write(os.path.join(new, "report.json"), json.dumps(report, indent=2) + "\n")
    _write(os.path.join(new, "report.md"), markdown(report))
    for page, text in (pages or {}).items():
        _write(os.path.join(new, page), text)
    os.chmod(new, 0o755)
    link = os.path.join(parent, f".{name}.link-{os.path.basename(new).rsplit('.', 1)[-1]}")
    os.symlink(os.path.basename(new), link)
    here = os.path.join(parent, name)
    if os.path.isdir(here) and not os.path.islink(here):
        if os.listdir(here):
            suffix = os.path.basename(new).rsplit(".", 1)[-1]
            os.rename(here, os.path.join(parent, f".{name}.old-{suffix}"))
        else:
            os.rmdir(here)
    os.replace(link, here)
    _sync(parent)
    _remove_siblings(parent, name, keep=os.path.basename(new))


def _sync(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _siblings(parent, name):
    prefix = f".{name}."
    return [e for e in os.listdir(parent) if e.startswith(prefix)]


def _recover(parent, name):
    """Undo a kill between moving an old real directory aside and the swap."""
    here = os.path.join(parent, name)
    if os.path.lexists(here):
        return
    old = sorted(e for e in _siblings(parent, name) if e.startswith(f".{name}.old-"))
    if old:
        os.rename(os.path.join(parent, old[-1]), here)


def _remove_siblings(parent, name, keep):
    for entry in _siblings(parent, name):
        if entry != keep:
            path = os.path.join(parent, entry)
            if os.path.islink(path) or not os.path.isdir(path):
                os.remove(path)
            else:
                shutil.rmtree(path, ignore_errors=True)


def value_text(value):
    """A value of a finding as the reports print it: 17 digits, the first elements of arrays."""
    if isinstance(value, float):
        return f"{value:.17g}"
    if isinstance(value, dict) and "values" in value:
        shown = ", ".join(value["values"][:6]) + (", ..." if len(value["values"]) > 6 else "")
        return f"shape {tuple(value['shape'])}: [{shown}]"
    return "-" if value is None else str(value)


def _reasons(rejected):
    return ", ".join(f"{reason}: {n}" for reason, n in rejected.items()) or "-"


def plural(n, word, many=None):
    """'1 Function', '2 Functions', '0 Functions'."""
    return f"{n} {word if n == 1 else many or word + 's'}"


# A Function's verdict as the summaries count it, in their order; any FAIL counts as "failed".
COUNTED = [
    (Outcome.OK, "ok"),
    (Outcome.FAIL, "failed"),
    (Outcome.UNVERIFIED, "unverified"),
    (Outcome.PARTIAL, "partial"),
    (Outcome.NOT_RUN, "not run"),
]


def tally(report):
    """{outcome word: number of Functions}, for every word of COUNTED, in its order."""
    found = {word: 0 for _, word in COUNTED}
    words = dict(COUNTED)
    for row in report["functions"]:
        found[words[Outcome(row["verdict"].split(":")[0])]] += 1
    return found


def summary_line(report):
    """'42 Functions fuzzed: 20 ok, 22 failed, 0 unverified, 0 partial, 0 not run; 23 findings.'"""
    n = len(report["counterexamples"])
    return (
        f"{plural(len(report['functions']), 'Function')} fuzzed: "
        + ", ".join(f"{count} {word}" for word, count in tally(report).items())
        + f"; {plural(n, 'finding')}."
    )


def settings_line(report):
    """The profile, the seed and the bar for `ok`, as the run recorded them."""
    run = report.get("run", {})
    seed = run.get("fuzz_seed", 0)
    if run.get("derandomized", True):
        drawn = f"seed {seed} (--fuzz-seed; derandomized: the same cases on every run)"
    else:
        drawn = "random seeds (the profile is not derandomized)"
    return (
        f"Profile {run.get('profile', '?')}, {drawn}; a Function needs "
        f"{run.get('min_judged', MIN_JUDGED)} judged gradient examples to be ok."
    )


def stage_lines(finding):
    """What the guilty Function received and returned at each of its stages in a chain."""
    lines = []
    n = len(finding["chain"])
    for stage in finding.get("stages", ()):
        lines += [
            f"- at stage {stage['index'] + 1} of {n} ({finding['function']}):",
            f"  - its input: {value_text(stage['input'])}",
            f"  - its upstream gy: {value_text(stage['upstream_grad'])}",
            f"  - its output: {value_text(stage['output'])}",
        ]
    return lines


def graph_lines(finding):
    """A graph property's finding: its engine, parameters, DAG and every input, exactly."""
    free = finding.get("differentiated", [])
    parameters = ", ".join(f"`{k}={v}`" for k, v in finding.get("parameters", {}).items())
    lines = [f"- engine: {finding.get('engine', '-')}", f"- parameters: {parameters or '-'}"]
    if finding.get("dag"):
        lines.append(f"- DAG: `{finding['dag']}`")
    for i, value in enumerate(finding["inputs"]):
        role = "differentiated" if i in free else "not differentiated"
        lines.append(f"- input v{i} ({role}): {value_text(value)}")
    if finding.get("wrong_input") is not None:
        lines.append(f"- wrong gradient: of input v{finding['wrong_input']}")
    if "second_direction" in finding:
        lines += [
            "- the second derivative of s(x) = <backward(gy), v>, where",
            f"  - gy: {value_text(finding['first_upstream_grad'])}",
            f"  - v: {value_text(finding['second_direction'])}",
        ]
    return lines


def markdown(report):
    """The report for people: a summary, a table, then one section per finding."""
    lines = ["# Gradient fuzzing report", ""]
    lines += [
        summary_line(report),
        "",
        settings_line(report),
        "",
        "| function | judged | verdict | not judged |",
        "| --- | ---: | --- | --- |",
    ]
    lines += [
        f"| {r['name']} | {gradient_judged(r.get('judged', {}))} | {r['verdict']}"
        f"{' (' + ', '.join(r['notes']) + ')' if r.get('notes') else ''} "
        f"| {_reasons(r['rejected'])} |"
        for r in report["functions"]
    ]
    printed = [r for r in report["functions"] if r.get("output")]
    if printed:
        lines += ["", "## Output printed by the Functions", ""]
        for r in printed:
            shown = r["output"]["shown"].rstrip("\n")
            lines += [
                f"{r['name']} printed {r['output']['bytes']} bytes; the first lines "
                f"(all of it in `{r['output']['file']}`):",
                "",
                "```",
                *shown.splitlines()[:8],
                "```",
                "",
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
            *(graph_lines(f) if "inputs" in f else [f"- input x: {value_text(f['input'])}"]),
        ]
        if "upstream_grad" in f:
            lines.append(f"- upstream gy: {value_text(f['upstream_grad'])}")
        lines += stage_lines(f)
        if "analytic" in f and "tolerance" in f:
            lines += [
                "",
                "| analytic | numerical | abs error | rel error | tolerance |",
                "| ---: | ---: | ---: | ---: | ---: |",
                "| "
                + " | ".join(
                    value_text(f[k])
                    for k in ("analytic", "numerical", "abs_error", "rel_error", "tolerance")
                )
                + " |",
            ]
        if f.get("reproduced") is False:
            lines += [
                "",
                "Not reproduced: a fresh process replaying it when the report was written "
                "(after the earlier calls kept, if any) did not fail this way.",
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
