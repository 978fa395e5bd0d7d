"""Example Functions to fuzz: correct ones (correct.py) and deliberately wrong ones (wrong.py)."""
