"""tinyml: data -> models -> prune -> quantize -> compile -> firmware -> device -> sweep."""

import os as _os

# torch's OpenMP threads spin while they wait; on a busy machine (other jobs, parallel sweep points) spinning
# threads steal the cores they wait for and training slows 5-20x. Waiting passively costs ~5% when idle.
# Must be set before torch is first imported; the user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
