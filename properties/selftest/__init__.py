"""Tests of the harness itself, run on throwaway modules with pytester."""
