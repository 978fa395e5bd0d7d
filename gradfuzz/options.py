"""The options of a gradfuzz run, defined once: the pytest plugin and the CLI both read OPTIONS."""

from dataclasses import dataclass

from gradfuzz import guard, report


@dataclass(frozen=True)
class Option:
    """One pytest option of the plugin; `cli` is its name in the `gradfuzz` command.

    `cli=None` keeps the pytest name; `cli=""` leaves it out of the command
    (the command takes --fuzz as its positional TARGETs).
    """

    flag: str
    help: str
    default: object = None
    type: object = None  # a converter such as float
    metavar: str | None = None
    action: str = "store"
    choices: tuple | None = None
    cli: str | None = None

    @property
    def dest(self):
        return self.flag.removeprefix("--").replace("-", "_")

    def kwargs(self):
        """Keyword arguments for argparse's and pytest's add_argument/addoption."""
        shown = {"append": "none", "store_true": "off"}.get(self.action, f"{self.default}")
        found = {"action": self.action, "help": f"{self.help} (default: {shown})"}
        if self.action != "store_true":
            found["default"] = [] if self.action == "append" else self.default
            found["metavar"] = self.metavar
        if self.type is not None:
            found["type"] = self.type
        if self.choices is not None:
            found["choices"] = list(self.choices)
        return found

    def command_line(self, value):
        """The pytest arguments that give this option `value` ([] for the default)."""
        if self.action == "store_true":
            return [self.flag] if value else []
        if self.action == "append":
            return [arg for v in value for arg in (self.flag, str(v))]
        if value == self.default:
            return []
        return [f"{self.flag}={value:g}" if isinstance(value, float) else f"{self.flag}={value}"]


OPTIONS = [
    Option(
        "--fuzz",
        "fuzz the Function subclasses defined in TARGET: a .py file or a dotted module, "
        "optionally ending in :ClassName; repeatable",
        action="append",
        metavar="TARGET",
        cli="",
    ),
    Option(
        "--report-dir",
        "write report.json, report.md, report.html and repro_<id>.py here",
        default="reports",
        metavar="DIR",
    ),
    Option(
        "--fuzz-timeout",
        "time limit of one forward or backward call, in seconds",
        default=guard.DEFAULT_TIME_LIMIT,
        type=float,
        metavar="SECONDS",
        cli="--timeout",
    ),
    Option(
        "--fuzz-seed",
        "under a derandomized profile (ci), draw another fixed set of cases",
        default=0,
        type=int,
        metavar="N",
    ),
    Option(
        "--min-judged",
        "a Function whose gradient properties judged fewer examples is 'unverified' and "
        "fails the run",
        default=report.MIN_JUDGED,
        type=int,
        metavar="N",
    ),
    Option(
        "--fail-on",
        "also fail the run on imprecise_gradient notes",
        action="append",
        choices=("imprecise",),
        metavar="imprecise",
    ),
    Option(
        "--no-strict",
        "judge gradients by central differences alone, without the strict precise-oracle "
        "check (complex step or Richardson)",
        action="store_true",
    ),
]


def add_to_pytest(group):
    """Register every option in a pytest option group."""
    for option in OPTIONS:
        group.addoption(option.flag, dest=option.dest, **option.kwargs())


def add_to_command(parser):
    """Register the options the `gradfuzz` command passes on to the plugin."""
    for option in OPTIONS:
        if option.cli != "":
            parser.add_argument(option.cli or option.flag, dest=option.dest, **option.kwargs())


def pytest_arguments(namespace):
    """The plugin's part of the pytest command line for a parsed `gradfuzz` command."""
    return [
        arg
        for option in OPTIONS
        if option.cli != ""
        for arg in option.command_line(getattr(namespace, option.dest))
    ]
