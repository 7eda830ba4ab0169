"""External programs (pyocd, bossac, qemu-system-arm, make): found one way everywhere, run with a timeout.

A tool is looked up on PATH, then beside this Python: `pip install pyocd` into a venv that is not activated
puts it in the venv's bin/ only, and a `make flash` that looked on PATH alone failed while `tinyml doctor`
said ok.
The doctor, the exported Makefiles (their PYOCD/BOSSAC defaults) and the runners all use `find_tool`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tinyml.errors import TinymlError

APT = "sudo apt-get install -y"


@dataclass(frozen=True)
class Tool:
    install: str  # the command that installs it
    check: str  # what to look at when it fails or hangs


TOOLS = {
    "pyocd": Tool(
        f"{sys.executable} -m pip install pyocd",
        "is the debug probe plugged in and the board powered? `pyocd list` shows the probes it sees",
    ),
    "bossac": Tool(
        "install Arduino's bossac (it comes with the Arduino board package: "
        "`arduino-cli core install arduino:mbed_nano`)",
        "double-tap reset so the bootloader runs (the LED pulses) and pass its port: SERIAL=/dev/ttyACM0",
    ),
    "qemu-system-arm": Tool(f"{APT} qemu-system-arm", "does `qemu-system-arm --version` run?"),
    "make": Tool(f"{APT} make", "does `make --version` run?"),
}


def find_tool(name: str) -> str | None:
    """The tool's path: on PATH, else in this Python's bin/ (a venv not activated); None if neither."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def tool_for_makefile(name: str) -> str:
    """What an exported Makefile calls: the bare name when PATH finds it (portable), else the venv's path."""
    found = find_tool(name)
    return name if found is None or shutil.which(name) == found else found


def require_tool(name: str) -> str:
    found = find_tool(name)
    if found is None:
        hint = TOOLS[name].install if name in TOOLS else f"install {name}"
        raise TinymlError(f"{name} not found on PATH or in {Path(sys.executable).parent}: {hint}")
    return found


def run_tool(cmd: list[str], timeout: float, what: str, cwd: str | os.PathLike | None = None
             ) -> subprocess.CompletedProcess:
    """Run `cmd` (its first word is looked up with find_tool) with a deadline; on timeout the whole process
    group is killed and the error says what it was doing and what to check."""
    name = Path(cmd[0]).name
    exe = require_tool(cmd[0]) if os.sep not in cmd[0] else cmd[0]
    check = TOOLS[name].check if name in TOOLS else "is the device connected?"
    proc = subprocess.Popen([exe, *cmd[1:]], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise TinymlError(f"{what} did not finish within {timeout:g} s and was stopped: {check}") from None
    except BaseException:  # Ctrl-C: leave no tool behind
        _kill_group(proc)
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(5)
