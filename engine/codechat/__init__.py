"""Code chat with tests: prompts for tasks, puzzles and repair turns, and checking a reply's code."""
