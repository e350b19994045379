"""Evaluation of code models: pass@k on P3 puzzles and HumanEval, verified in the sandbox."""
