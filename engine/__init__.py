"""Autodidact's ML and verification core.

Framework-free on purpose (no Django import anywhere below this package): it is usable as a
library and from the command line, and the web app is only one of its callers.
"""
