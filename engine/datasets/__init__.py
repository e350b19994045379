"""Benchmark and training datasets read from a user-given path (never copied into the project)."""
