"""The `gradfuzz` command: fuzz TARGETs with the installed property suite.

    gradfuzz TARGET... [--report-dir D] [--profile P] [--timeout S] [-n N]
                       [--fuzz-seed N] [--min-judged N] [--fail-on imprecise] [--no-strict]
                       [-- PYTEST_ARGS]

The options passed on to the plugin are defined once, in gradfuzz/options.py.

`python -m gradfuzz` is the same program.
"""

import argparse
import os
import sys

import pytest

from gradfuzz import options, profiles

# Exit codes, pytest's own: the command returns what the pytest run returned.
EXIT_CODES = {
    0: "clean: every Function fuzzed, no finding",
    1: "findings, or a Function not run, not fully run, or unverified",
    2: "interrupted (Ctrl-C)",
    3: "internal error of pytest or the harness",
    4: "usage error: a bad option or TARGET, before any fuzzing",
    5: "no test was collected",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        """A bad command line exits with the usage-error status (4), not argparse's 2."""
        self.print_usage(sys.stderr)
        self.exit(pytest.ExitCode.USAGE_ERROR, f"{self.prog}: error: {message}\n")


def parser():
    p = _Parser(
        prog="gradfuzz",
        description="Fuzz the backward passes of the engine.Function subclasses in each TARGET "
        "and write report.json, report.md, report.html and one replay script per finding.",
        epilog="Arguments after `--` go to pytest unchanged (e.g. -- -x -v; -v shows "
        "Hypothesis's full output).\n\nexit codes:\n"
        + "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_CODES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "targets",
        nargs="+",
        metavar="TARGET",
        help="a .py file or a dotted module name, optionally ending in :ClassName",
    )
    p.add_argument(
        "--profile",
        default=None,
        choices=profiles.NAMES,
        help="Hypothesis profile (default: $HYPOTHESIS_PROFILE, else dev)",
    )
    p.add_argument(
        "-n",
        "--workers",
        default=None,
        help="pytest-xdist worker processes: a number, or auto (default: one isolated worker; "
        "0 runs the Functions in this process, without isolation)",
    )
    options.add_to_command(p)
    return p


def pytest_args(argv):
    """The pytest command line that `gradfuzz argv` runs."""
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser().parse_args(argv[:split])
    suite = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "properties")
    command = [
        os.path.join(suite, "test_properties.py"),
        "-p",
        "no:cacheprovider",
        *(["-n", args.workers] if args.workers is not None else []),
    ]
    if args.profile:
        command.append(f"--hypothesis-profile={args.profile}")
    command += options.pytest_arguments(args)
    for target in args.targets:
        command += ["--fuzz", target]
    return command + argv[split + 1 :]


def main(argv=None):
    """Run the property suite on the TARGETs; return pytest's exit code."""
    return int(pytest.main(pytest_args(sys.argv[1:] if argv is None else argv)))
