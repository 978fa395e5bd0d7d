"""Benchmarks and measurements: run with tox -e bench."""
