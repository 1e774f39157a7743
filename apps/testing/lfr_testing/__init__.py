"""Helpers for tests against real components (see plugin.py for the fixtures)."""
