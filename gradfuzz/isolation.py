"""What the plugin needs to survive user code: dead workers, their last call, kept calls.

The properties run in xdist workers. Before every guarded call a worker writes
the call into its journal file (`guard.journal`), so that when the worker
dies, the controller can name the input that killed it. When a test finds a
problem, the worker saves the backward calls it kept for the Function, so that
the report can replay a finding that needs earlier calls.
"""

import os
import pickle
import re
import signal

from gradfuzz import guard
from gradfuzz.findings import Finding, Kind


def journal_path(output_dir, worker_id):
    """The journal file of worker `worker_id` ("gw0", or "main" without a worker)."""
    return os.path.join(output_dir, f"journal-{worker_id}")


def watchdog_path(output_dir, worker_id):
    """Where the watchdog of worker `worker_id` dumps the stuck stack."""
    return os.path.join(output_dir, f"watchdog-{worker_id}")


def terminal_fd(config):
    """The terminal's stderr, even while pytest captures file descriptor 2 for a test."""
    capturing = getattr(config.pluginmanager.getplugin("capturemanager"), "_global_capturing", None)
    saved = getattr(getattr(capturing, "err", None), "targetfd_save", None)
    return saved if isinstance(saved, int) else 2


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as text:
            return text.read()
    except OSError:
        return ""


def dead_worker_finding(name, prop, *, output_dir, worker_id, status, elapsed, hard_limit):
    """The Finding for a worker that died while running `prop` of Function `name`.

    It names the call the worker was making (from its journal) when the call's
    chain holds `name`: the stage, the chain, the input x and, for backward, gy.
    """
    kind, why = _death(status, elapsed, hard_limit, _read(watchdog_path(output_dir, worker_id)))
    call = guard.Journal.read(journal_path(output_dir, worker_id))
    if call is None or name not in call["chain"]:
        finding = Finding(
            kind,
            name,
            f"the worker running {name} {why}",
            chain=[name],
            time_limit=guard.time_limit(),
        )
    else:
        numbers = {"stage": call["stage"], "time_limit": guard.time_limit()}
        if call["upstream_grad"] is not None:
            numbers["upstream_grad"] = call["upstream_grad"]
        finding = Finding(
            kind,
            name,
            f"the worker running {name} {why}; it was in the {call['stage']} pass of the "
            "chain below, on the input below",
            chain=call["chain"],
            input=call["input"],
            **numbers,
        )
    finding.property = prop
    return finding


def exit_status(node):
    """The dead worker's exit status (negative: the signal that killed it), or None."""
    popen = getattr(getattr(getattr(node, "gateway", None), "_io", None), "popen", None)
    try:
        return popen.wait(timeout=5) if popen is not None else None
    except Exception:
        return None


def _death(status, elapsed, hard_limit, last_words=""):
    """(kind, explanation) for a worker that died with `status` after `elapsed` seconds.

    `last_words` is the watchdog's stack dump, if it is what ended the worker.
    """
    if last_words:
        return Kind.TIMEOUT, (
            "was ended by the watchdog: a call outlived --fuzz-timeout where the alarm "
            "cannot stop it (inside C code, swallowing the alarm, or with the SIGALRM "
            f"handler replaced); it was at {_user_frame(last_words)}"
        )
    if hard_limit and elapsed >= 0.9 * hard_limit:
        return Kind.TIMEOUT, (
            f"was killed by the hard per-test limit of {hard_limit:g} s (pytest-timeout): "
            "a call hung where --fuzz-timeout cannot stop it (inside C code, swallowing the "
            "alarm, or with the SIGALRM handler replaced)"
        )
    if status is not None and status < 0:
        try:
            signame = signal.Signals(-status).name
        except ValueError:
            signame = f"signal {-status}"
        return Kind.CRASHED, f"died from {signame}"
    shown = "an unknown status" if status is None else f"status {status}"
    return Kind.EXITED, f"exited with {shown} (os._exit or the like) in the middle of a test"


def _user_frame(dump):
    """The innermost frame of the main thread in a faulthandler dump, outside gradfuzz."""
    main = dump.split("Current thread")[-1]
    for line in main.splitlines():
        line = line.strip()
        if line.startswith("File ") and "/gradfuzz/" not in line:
            return line
    return "an unknown place"


def _calls_path(output_dir, function, kind, prop):
    safe = re.sub(r"[^\w.-]", "_", f"{function}.{kind}.{prop}")
    return os.path.join(output_dir, f"calls-{safe}.pkl")


def save_calls(output_dir, finding):
    """Keep the backward calls `guard.journal` holds for a finding's Function, beside it."""
    calls = guard.journal.calls(finding["function"])
    if calls:
        path = _calls_path(output_dir, finding["function"], finding["kind"], finding["property"])
        with open(path, "wb") as out:
            pickle.dump(calls, out, protocol=pickle.HIGHEST_PROTOCOL)


def load_calls(output_dir, finding):
    """The calls `save_calls` kept for `finding` (a report dict), or []."""
    path = _calls_path(output_dir, finding["function"], finding["kind"], finding["property"])
    try:
        with open(path, "rb") as kept:
            return pickle.load(kept)
    except (OSError, pickle.UnpicklingError, EOFError):
        return []
