"""tinyml: data -> models -> prune -> quantize -> compile -> firmware -> device -> sweep."""

import os as _os
import sys as _sys

# torch's OpenMP threads spin while they wait; on a busy machine (other jobs, parallel sweep points) spinning
# threads steal the cores they wait for and training slows 5-20x. Waiting passively costs ~5% when idle.
# Must be set before torch is first imported; the user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Progress bars redraw on a terminal; in a log file or CI output every redraw is kept, so there they update
# once every 30 s instead (tqdm reads TQDM_* variables as its defaults; the user's own setting wins).
if not _sys.stderr.isatty():
    _os.environ.setdefault("TQDM_MININTERVAL", "30")

__version__ = "0.1.0"
