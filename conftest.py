"""Loads the harness plugin when the project is run from a checkout without being installed.

The plugin registers the Hypothesis profiles dev, ci and nightly (fuzzing/profiles.py);
choose one with --hypothesis-profile NAME or HYPOTHESIS_PROFILE=NAME.
When the project is installed, its pytest11 entry point has the same name, so
pytest registers the plugin once.
"""

pytest_plugins = ["fuzzing.plugin", "pytester"]
