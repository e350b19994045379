"""`python -m engine.verify`: the documented name of the sandbox's command line, kept as an alias of
`python -m engine.sandbox` (engine/sandbox/__main__.py)."""
import sys

from engine.sandbox.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
