"""Estimated cycles from exact per-instruction execution counts (QEMU plugin) and ARM TRM cost rules per core.

plugin.py builds and locates the QEMU TCG plugin (qemu_prof.c), profile.py reads what it writes and maps
addresses to functions, model.py holds one cost table per core and prices a profile. docs/cycle-model.md gives
the rules with their sources.
"""
