"""Byte links to a board: a serial port (real board) or QEMU's TCP serial server (emulated), via pyserial.

`QemuBoard` boots an image with the serial port on a loopback TCP server whose port the OS picks (port=0:
QEMU prints the one it got), so any number can run side by side; it always kills QEMU on the way out.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tinyml.errors import TinymlError
from tinyml.firmware.boards import Board
from tinyml.tools import require_tool

QEMU_START_TIMEOUT = 10.0


def _parent_death_signal() -> object:
    """Linux: a preexec_fn that makes QEMU get SIGKILL when the process that started it dies, even by SIGKILL
    (a killed sweep), instead of spinning on in the firmware's serial poll loop. None elsewhere."""
    try:
        import ctypes
        import signal

        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
        return lambda: prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return None


class LinkClosed(TinymlError):
    """The other end went away (board unplugged, QEMU exited)."""


class Link:
    """A pyserial port with deadline-bounded reads that never lose bytes already received."""

    def __init__(self, url: str, baud: int = 115200, connect_timeout: float = 5.0):
        import serial

        self.name = url
        self._serial_exc = serial.SerialException
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                # exclusive: a port another program holds is an error now, not interleaved bytes later
                self.port = serial.serial_for_url(url, baudrate=baud, timeout=0.1,
                                                  write_timeout=connect_timeout,
                                                  exclusive=url.startswith("/dev/") or None)
                break
            except (serial.SerialException, OSError, ValueError) as e:
                # A TCP server that is still starting refuses for a moment; a missing device never appears.
                if not url.startswith("socket://") or time.monotonic() > deadline:
                    raise TinymlError(f"cannot open {url}: {_reason(e)}{_hint(url)}") from None
                time.sleep(0.05)
        try:
            self.port.reset_input_buffer()
        except (serial.SerialException, OSError):
            pass

    def read(self, n: int, timeout: float) -> bytes:
        """Up to n bytes, waiting at most `timeout` s for the first; b"" on timeout.

        pyserial's socket backend drops what it already received when a multi-byte read meets a disconnect,
        so callers ask for exactly the bytes of the frame they are in (FrameReader does).
        """
        self.port.timeout = max(0.0, min(timeout, 1.0))
        try:
            data = self.port.read(n)
        except (self._serial_exc, OSError) as e:
            raise LinkClosed(f"lost the connection to {self.name}: {_reason(e)}") from None
        if not data and "socket://" not in self.name and not self._still_there():
            raise LinkClosed(f"{self.name} disappeared (board unplugged or reset?)")
        return data

    def write(self, data: bytes) -> None:
        try:
            self.port.write(data)
            self.port.flush()
        except (self._serial_exc, OSError) as e:
            raise LinkClosed(f"lost the connection to {self.name}: {_reason(e)}") from None

    def _still_there(self) -> bool:
        return os.path.exists(self.name) if self.name.startswith("/dev/") else True

    def close(self) -> None:
        try:
            self.port.close()
        except Exception:  # closing a dead port must not mask the error that killed it
            pass

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _reason(e: BaseException) -> str:
    msg = str(e)
    m = re.search(r"\[Errno \d+\] (.*)", msg)
    return m.group(1) if m else msg


def _hint(url: str) -> str:
    if url.startswith("socket://"):
        return " (is the emulated board running? `make flash` in an exported project prints the address)"
    if url.startswith("/dev/"):
        return (
            " (is the board plugged in? check `ls /dev/ttyACM* /dev/ttyUSB*`; is another program using it?)"
        )
    return ""


class QemuBoard:
    """`with QemuBoard(board, elf) as q:` boots QEMU; q.url is its serial port; QEMU is killed on exit."""

    def __init__(self, board: Board, elf: Path, log: Path | None = None, extra_args: Sequence[str] = ()):
        if not board.emulated:
            raise TinymlError(f"board {board.name} is not emulated: flash it (`make flash`) and use --port")
        self.board, self.elf = board, Path(elf)
        self._log_path = log
        self.extra_args = tuple(extra_args)  # e.g. the cycle profiler's -plugin
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def __enter__(self) -> QemuBoard:
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="tinyml-qemu-", suffix=".log")
            os.close(fd)
            self._log_path, self._own_log = Path(name), True
        else:
            self._own_log = False
        cmd = self.board.qemu_command(self.elf, port=0)
        cmd[-2:-2] = self.extra_args
        cmd[0] = require_tool(cmd[0])  # PATH, else this venv's bin/, as everywhere (tinyml/tools.py)
        with open(self._log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                preexec_fn=_parent_death_signal(),
            )
        try:
            self.port = self._wait_for_port()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + QEMU_START_TIMEOUT
        while time.monotonic() < deadline:
            m = re.search(r"waiting for connection on: \S*:(\d+),server", self.log_text())
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise TinymlError(
                    f"QEMU ({self.board.qemu_machine}) exited with code {self.proc.returncode} "
                    f"before starting: {self.log_tail()}"
                )
            time.sleep(0.01)
        raise TinymlError(
            f"QEMU ({self.board.qemu_machine}) did not open its serial port within "
            f"{QEMU_START_TIMEOUT:.0f} s: {self.log_tail()}"
        )

    def log_text(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 5) -> str:
        text = [ln for ln in self.log_text().splitlines() if "waiting for connection" not in ln]
        return " | ".join(text[-lines:]) or "(no output)"

    def status(self) -> str:
        """One line for error messages: is QEMU still running, and if not, how did it end."""
        if self.proc is None or self.proc.poll() is None:
            return "QEMU is still running"
        code = self.proc.returncode
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return f"QEMU {how} ({self.log_tail()})"

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout) if self.proc else None
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """Terminate QEMU (then kill it); safe to call twice."""
        p = self.proc
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(2.0)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5.0)

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._own_log and self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
