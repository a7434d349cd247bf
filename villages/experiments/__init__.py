"""Experiments: the demo, the diversity sweep, and their reports."""
