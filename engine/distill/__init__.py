"""Reasoning distillation: a teacher's traces (reasoning, then code) kept when the sandbox passes
them, for the `distill` training method (engine/training/distill.py)."""
