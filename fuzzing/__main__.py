"""python -m fuzzing TARGET... [-- PYTEST_ARGS]: fuzz TARGETs with the property suite."""

import os
import sys

import pytest

import properties

USAGE = "usage: python -m fuzzing TARGET [TARGET ...] [-- PYTEST_ARGS]"


def main(argv):
    """Run the installed property suite with --fuzz for every TARGET; return pytest's exit code."""
    split = argv.index("--") if "--" in argv else len(argv)
    targets, extra = argv[:split], argv[split + 1 :]
    if not targets or any(t.startswith("-") for t in targets):
        print(USAGE, file=sys.stderr)
        print(
            "each TARGET is a .py file or a dotted module, optionally ending in :ClassName",
            file=sys.stderr,
        )
        return pytest.ExitCode.USAGE_ERROR
    suite = os.path.join(
        os.path.dirname(os.path.abspath(properties.__file__)), "test_properties.py"
    )
    args = [suite, "-p", "no:cacheprovider", *extra]
    for target in targets:
        args += ["--fuzz", target]
    return pytest.main(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
