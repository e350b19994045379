"""The builtins as they were when the sandbox's own modules were imported: in the worker, before
any untrusted code ran.

Each module whose code a run executes after untrusted code (encoding values, reporting records)
makes this dict its `__builtins__`, so its functions look names up here, not in the `builtins`
module a run may have patched: code that sets `builtins.len` or `builtins.isinstance` cannot
break or bend the report of its own result. Test expressions are evaluated with it too.

It replaces restoring the `builtins` module before each report, which wrote to every builtin
object's page in every run (copy-on-write faults after the fork: measured 1.3 ms of a 9 ms puzzle
check, benchmarks/sandbox_profile.py).
"""
from __future__ import annotations

import builtins

BUILTINS = dict(builtins.__dict__)
