"""Loads the harness plugin when the project is run from a checkout without being installed.

When the project is installed, its pytest11 entry point has the same name, so
pytest registers the plugin once. The Hypothesis profiles dev, ci and nightly are
registered by the plugin (gradfuzz/profiles.py); choose one with
--hypothesis-profile NAME or HYPOTHESIS_PROFILE=NAME.
"""

pytest_plugins = ["gradfuzz.plugin", "pytester"]
