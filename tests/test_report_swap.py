"""The set of report files is replaced as a whole, even when the writer is killed."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from fuzzer import REPO

from gradfuzz import report

# A writer that replaces the report set forever, alternating two sets that differ in
# every file: set `a` has one finding, set `b` three.
WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    from gradfuzz import report

    def built(tag, n):
        findings = [
            {{"id": f"{{tag}}{{i}}", "function": f"F{{i}}", "kind": "timeout", "chain": [f"F{{i}}"],
              "explanation": tag, "found_by": ["gradient"], "input": None,
              "reproduce": f"python repro_{{tag}}{{i}}.py"}}
            for i in range(n)
        ]
        return {{"schema": 1, "functions": [], "counterexamples": findings, "run": {{"tag": tag}}}}

    sets = [built("a", 1), built("b", 3)]
    report.write(sets[0], sys.argv[1], {{}})
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        report.write(sets[i % 2], sys.argv[1], {{}})
    """
)


def _whole_set(directory):
    """The tag of the one whole set in `directory`; AssertionError if it is mixed or partial."""
    built = json.loads((directory / "report.json").read_text())
    tag = built["run"]["tag"]
    expected = {f"repro_{f['id']}.py" for f in built["counterexamples"]}
    scripts = {p.name for p in directory.iterdir() if p.name.startswith("repro_")}
    assert scripts == expected, (tag, scripts)
    markdown = (directory / "report.md").read_text()
    assert all(f"## F{i}: timeout" in markdown for i in range(len(expected)))
    assert all(f"Replay of {tag}" in (directory / name).read_text() for name in scripts)
    return tag


def test_a_writer_killed_at_any_moment_leaves_one_whole_set(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(repo=REPO))
    reports = tmp_path / "reports"
    seen = set()
    for attempt in range(40):
        writer = subprocess.Popen(
            [sys.executable, str(script), str(reports)], stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout.readline() == "ready\n"
        # Spread the kills over a few write cycles (a cycle takes a few milliseconds).
        time.sleep((attempt * 7 % 40) / 1000)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        seen.add(_whole_set(reports))
    assert seen == {"a", "b"}, "the kills must land in both phases of the swap"
    # Leftovers of the killed writes go at the next write: one versioned directory remains.
    report.write(json.loads((reports / "report.json").read_text()), str(reports), {})
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".reports.")] == [
        os.readlink(reports)
    ]
