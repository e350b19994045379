"""Self-play (P3, "Language Models Can Teach Themselves to Program Better"): puzzles in, verified
puzzle/solution pairs out. No Django: usable as a library and from the command line."""
