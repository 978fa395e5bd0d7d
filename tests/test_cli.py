"""The `gradfuzz` command: its help, its exit codes, and options passed on to the plugin."""

import subprocess
import sys

import pytest

from gradfuzz import cli, options


def _help(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_help_lists_every_option_with_its_default(capsys):
    text = " ".join(_help(capsys).split())  # argparse wraps lines
    for option in options.OPTIONS:
        if option.cli == "":
            continue
        assert (option.cli or option.flag) in text
        assert f"{option.kwargs()['help']}" in text, option.flag
    for flag in ("--profile", "--workers", "TARGET"):
        assert flag in text


def test_help_lists_the_exit_codes(capsys):
    lines = _help(capsys).splitlines()
    for code, meaning in cli.EXIT_CODES.items():
        assert f"  {code}  {meaning}" in lines


def test_the_plugins_options_pass_through_to_pytest():
    args = cli.pytest_args(
        ["f.py", "g.py", "--fuzz-seed", "3", "--min-judged", "5", "--fail-on", "imprecise",
         "--no-strict", "--timeout", "0.5", "--report-dir", "out", "-n", "2", "--", "-x", "-v"]
    )  # fmt: skip
    assert args[1:] == [
        "-p", "no:cacheprovider", "-n", "2", "--report-dir=out", "--fuzz-timeout=0.5",
        "--fuzz-seed=3", "--min-judged=5", "--fail-on", "imprecise", "--no-strict",
        "--fuzz", "f.py", "--fuzz", "g.py", "-x", "-v",
    ]  # fmt: skip


def test_defaults_are_left_to_the_plugin():
    assert cli.pytest_args(["f.py"])[1:] == ["-p", "no:cacheprovider", "--fuzz", "f.py"]


def test_the_plugin_and_the_command_share_one_table_of_options(pytestconfig):
    given = pytestconfig.invocation_params.args  # tox passes --report-dir, for one
    for option in options.OPTIONS:
        if any(a == option.flag or str(a).startswith(f"{option.flag}=") for a in given):
            continue
        expected = [] if option.action == "append" else option.default
        if option.action == "store_true":
            expected = False
        assert pytestconfig.getoption(option.dest) == expected, option.flag


@pytest.mark.parametrize("argv", [["--no-such-option", "f.py"], [], ["f.py", "--timeout", "soon"]])
def test_a_bad_command_line_exits_with_the_usage_error_status(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == pytest.ExitCode.USAGE_ERROR == 4
    assert "gradfuzz: error:" in capsys.readouterr().err


def test_python_m_gradfuzz_is_the_same_program():
    done = subprocess.run(
        [sys.executable, "-m", "gradfuzz", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert done.stdout.startswith("usage: gradfuzz ")
    assert "--fuzz-seed" in done.stdout
