"""Host side of the serial protocol (device side: firmware/src/protocol.h, which documents the frame format).

`Device` turns frames into method calls with bounded timeouts, retries and errors that say what went wrong:
no answer, garbage on the line, a device error reply, a fault report, or a dropped connection. Nothing here
can block longer than the timeout it was given.
"""

from __future__ import annotations

import binascii
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from tinyml.device.transport import Link, LinkClosed
from tinyml.errors import TinymlError

SYNC = b"\xa5\x5a"
HEADER = struct.Struct("<BBH")  # cmd, seq, len
VERSION = 1
REPLY = 0x80
MSG_FAULT = 0xFE
MSG_TENSOR = 0xFD  # during DUMP: layer u16, offset u32, total u32, data
TENSOR_HEAD = struct.Struct("<HII")
MAX_TENSOR_BYTES = 16 << 20  # a layer output larger than any board's RAM is a corrupt frame, not a tensor
MAX_DUMP_BYTES = 64 << 20  # all layers of one DUMP together
MSG_ERROR = 0xFF
MAX_GARBAGE = 4096  # bytes of non-frames tolerated while waiting for one reply
MIN_PAYLOAD = 16  # least max payload a device may advertise: SET_INPUT's offset + data, PROFILE's 6 + 8 bytes
# Zero bytes sent before a HELLO retry: they complete any frame the device's parser believes it is in (line
# noise that looked like a sync pair and a length up to the firmware's PROTO_MAX_PAYLOAD, 1024), which then
# fails its CRC, so the parser hunts for the sync pair again and sees our HELLO.
RESYNC = bytes(1024 + 8)


class Cmd(IntEnum):
    HELLO = 0x01
    INFO = 0x02
    SET_INPUT = 0x03
    INVOKE = 0x04
    GET_OUTPUT = 0x05
    PROFILE = 0x06
    EXIT = 0x07
    CRASH = 0x08
    DUMP = 0x09


class ErrorCode(IntEnum):
    CRC = 1
    TOO_LONG = 2
    TIMEOUT = 3
    UNKNOWN_CMD = 4
    BAD_ARG = 5
    MODEL = 6
    UNSUPPORTED = 7


class DeviceTimeout(TinymlError):
    """The device did not answer in time."""


class DeviceGarbage(TinymlError):
    """Bytes arrive but they are not frames (wrong baud rate, wrong port, another program)."""


class DeviceFault(TinymlError):
    """The firmware crashed and its fault handler reported the registers."""


class DeviceError(TinymlError):
    """The device answered a request with an error reply."""

    def __init__(self, code: int, cmd: int, message: str):
        self.code, self.cmd = code, cmd
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = f"error {code}"
        try:
            what = Cmd(cmd).name
        except ValueError:
            what = f"command 0x{cmd:02x}"
        super().__init__(f"device refused {what}: {name}: {message}")


def crc16_ccitt(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), as firmware/src/protocol.c computes it (binascii's
    crc_hqx is that CRC, in C: layer dumps move hundreds of kilobytes)."""
    return binascii.crc_hqx(data, crc)


def encode_frame(cmd: int, seq: int, payload: bytes = b"") -> bytes:
    body = HEADER.pack(cmd, seq, len(payload)) + payload
    return SYNC + body + struct.pack("<H", crc16_ccitt(body))


@dataclass(frozen=True)
class Frame:
    cmd: int
    seq: int
    payload: bytes


class FrameReader:
    """Reads whole frames from a link, one exact-size read at a time (never past the end of a frame).

    Bytes of a frame that fails its CRC (or claims an impossible length) go back into the input and are
    searched again for a sync pair, so a false sync in line noise cannot swallow the real reply behind it.
    """

    def __init__(self, link: Link, max_payload: int = 0xFFFF):
        self.link = link
        self.max_payload = max_payload
        self.pending = bytearray()  # pushed-back bytes, read before the link
        self.garbage = bytearray()  # what was skipped while hunting, for the error message

    def _read_exact(self, n: int, deadline: float) -> bytes:
        buf = bytearray(self.pending[:n])
        del self.pending[:n]
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                self.pending[:0] = buf  # keep what arrived: the next read may complete the frame
                raise DeviceTimeout("timed out waiting for a frame")
            buf += self.link.read(n - len(buf), left)
        return bytes(buf)

    def read(self, deadline: float) -> Frame:
        """The next frame with a valid CRC; noise and corrupt frames are skipped (and remembered)."""
        while True:
            self._hunt_sync(deadline)
            try:
                header = self._read_exact(HEADER.size, deadline)
            except DeviceTimeout:
                self.pending[:0] = SYNC  # a frame cut short by the deadline stays whole for the next read
                raise
            cmd, seq, length = HEADER.unpack(header)
            if length > self.max_payload:
                self._skip(SYNC, header)
                continue
            try:
                rest = self._read_exact(length + 2, deadline)
            except DeviceTimeout:
                self.pending[:0] = SYNC + header
                raise
            payload, (crc,) = rest[:-2], struct.unpack("<H", rest[-2:])
            if crc16_ccitt(header + payload) != crc:
                self._skip(SYNC, header + rest)
                continue
            return Frame(cmd, seq, payload)

    def _hunt_sync(self, deadline: float) -> None:
        b = self._read_exact(1, deadline)
        while True:
            if b != SYNC[:1]:
                self._skip(b)
                b = self._read_exact(1, deadline)
                continue
            try:
                b2 = self._read_exact(1, deadline)
            except DeviceTimeout:
                self.pending[:0] = b
                raise
            if b2 == SYNC[1:]:
                return
            self._skip(b)
            b = b2

    def _skip(self, data: bytes, push_back: bytes = b"") -> None:
        self.pending[:0] = push_back
        self.garbage += data
        if len(self.garbage) > MAX_GARBAGE:
            sample = bytes(self.garbage[:32]).hex(" ")
            raise DeviceGarbage(
                f"{self.link.name} sends data that is not tinyml frames (first bytes: {sample}): "
                f"wrong --baud, wrong port, or firmware that is not tinyml's?"
            )


@dataclass(frozen=True)
class Hello:
    version: int
    max_payload: int


HELLO_QUICK_TIMEOUT = 0.2  # s per quick HELLO try: a round trip takes milliseconds over QEMU or USB serial
HELLO_QUICK_TRIES = 3


class Device:
    """A tinyml firmware on the other end of a link."""

    def __init__(self, link: Link, timeout: float = 10.0, retries: int = 2):
        self.link = link
        self.timeout = timeout
        self.retries = retries
        self.reader = FrameReader(link)
        self.max_payload = 256  # until HELLO says otherwise
        self._seq = 0

    # ---- requests ----

    def request(
        self,
        cmd: int,
        payload: bytes = b"",
        timeout: float | None = None,
        retries: int | None = None,
        on_tensor: Callable[[bytes], None] | None = None,
    ) -> bytes:
        """Send a command and return its reply payload; retried on timeout (every command is idempotent).

        `on_tensor` receives the payload of every MSG_TENSOR frame sent before the reply (DUMP); each one
        restarts the timeout, which then bounds the silence between frames."""
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        name = Cmd(cmd).name if cmd in Cmd._value2member_map_ else f"0x{cmd:02x}"
        for attempt in range(retries + 1):
            self._seq = (self._seq + 1) & 0xFF
            self.link.write(encode_frame(cmd, self._seq, payload))
            try:
                return self._await(cmd, self._seq, timeout, on_tensor)
            except DeviceTimeout:
                if attempt == retries:
                    raise DeviceTimeout(
                        f"no answer to {name} from {self.link.name} within {timeout:g} s "
                        f"({retries + 1} tries)"
                    ) from None
        raise AssertionError("unreachable")

    def _await(self, cmd: int, seq: int, timeout: float, on_tensor: Callable[[bytes], None] | None) -> bytes:
        self.reader.garbage.clear()
        deadline = time.monotonic() + timeout
        while True:
            f = self.reader.read(deadline)
            if f.cmd == MSG_FAULT:
                raise DeviceFault(f"the firmware crashed: {f.payload.decode(errors='replace')}")
            if f.seq != seq:
                continue  # a late answer to an earlier try, or an error about line noise
            if f.cmd == MSG_TENSOR and on_tensor is not None:
                on_tensor(f.payload)
                deadline = time.monotonic() + timeout
                continue
            # an error about another command (line noise whose seq byte happened to match) is not ours
            if f.cmd == MSG_ERROR and len(f.payload) >= 2 and f.payload[1] in (cmd, 0):
                raise DeviceError(f.payload[0], f.payload[1], f.payload[2:].decode(errors="replace"))
            if f.cmd == cmd | REPLY:
                return f.payload

    # ---- commands ----

    def hello(self, timeout: float = 2.0, tries: int = 3) -> Hello:
        """Handshake: check it is a tinyml firmware speaking our protocol version.

        Some UARTs (the STM32F4's USART, in QEMU too) drop bytes that arrive before the firmware enables them,
        so the first HELLO may vanish: a few quick tries come first, then `tries` with the full timeout.
        """
        try:
            p = self.request(Cmd.HELLO, timeout=HELLO_QUICK_TIMEOUT, retries=HELLO_QUICK_TRIES - 1)
        except DeviceTimeout:
            self.link.write(RESYNC)  # the device may be stuck inside a frame that noise began
            p = self.request(Cmd.HELLO, timeout=timeout, retries=tries - 1)
        if len(p) < 9 or p[:6] != b"TINYML":
            raise DeviceGarbage(
                f"{self.link.name} answered HELLO with {p[:16].hex(' ')}: not a tinyml firmware"
            )
        version, max_payload = p[6], struct.unpack("<H", p[7:9])[0]
        if version != VERSION:
            raise TinymlError(
                f"the firmware speaks protocol version {version}, this tinyml speaks {VERSION}: "
                f"re-export and flash it with this tinyml"
            )
        if max_payload < MIN_PAYLOAD:
            raise DeviceGarbage(
                f"{self.link.name} advertises a maximum payload of {max_payload} bytes (at least "
                f"{MIN_PAYLOAD} needed): a corrupt or foreign firmware?"
            )
        self.max_payload = max_payload
        self.reader.max_payload = max_payload
        return Hello(version, max_payload)

    def info(self) -> dict[str, str]:
        text = self.request(Cmd.INFO).decode(errors="replace")
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def set_input(self, data: bytes) -> None:
        step = self.max_payload - 4
        for off in range(0, len(data), step):
            self.request(Cmd.SET_INPUT, struct.pack("<I", off) + data[off : off + step])

    def invoke(self, runs: int = 1, timeout: float | None = None) -> list[int]:
        """Run the model `runs` times on the current input; the count (cycles or instructions) of each run."""
        counts: list[int] = []
        batch = (self.max_payload - 2) // 8
        while len(counts) < runs:
            n = min(batch, runs - len(counts))
            # not retried: a lost reply after minutes of inference should end the run, not restart it
            p = self.request(Cmd.INVOKE, struct.pack("<H", n), timeout=timeout, retries=0)
            if len(p) != 2 + 8 * n or struct.unpack("<H", p[:2])[0] != n:
                raise TinymlError(
                    f"malformed INVOKE reply from {self.link.name} ({len(p)} bytes for {n} runs)"
                )
            counts += list(struct.unpack(f"<{n}Q", p[2:]))
        return counts

    def get_output(self, nbytes: int) -> bytes:
        out = bytearray()
        while len(out) < nbytes:
            n = min(self.max_payload, nbytes - len(out))
            p = self.request(Cmd.GET_OUTPUT, struct.pack("<IH", len(out), n))
            if len(p) != n:
                raise TinymlError(
                    f"malformed GET_OUTPUT reply from {self.link.name} ({len(p)} bytes for {n} asked)"
                )
            out += p
        return bytes(out)

    def profile(self, timeout: float | None = None) -> list[int]:
        """One invoke with per-layer marks (firmware built with --profile): the count of every layer."""
        counts: list[int] = []
        while True:
            p = self.request(Cmd.PROFILE, struct.pack("<H", len(counts)), timeout=timeout, retries=0)
            layers, first, n = struct.unpack("<HHH", p[:6]) if len(p) >= 6 else (0, -1, 0)
            if first != len(counts) or len(p) != 6 + 8 * n:
                raise TinymlError(f"malformed PROFILE reply from {self.link.name} ({len(p)} bytes)")
            counts += list(struct.unpack(f"<{n}Q", p[6:]))
            if len(counts) >= layers or n == 0:
                return counts

    def dump(self, timeout: float | None = None) -> dict[int, bytes]:
        """One inference on the current input with every layer's output sent back (firmware built with
        TINYML_DEBUG): layer index -> its output bytes. Not retried: a second try would mix two runs."""
        tensors: dict[int, bytearray] = {}
        sizes: dict[int, int] = {}

        def chunk(p: bytes) -> None:
            if len(p) < TENSOR_HEAD.size:
                raise TinymlError(f"malformed tensor frame from {self.link.name} ({len(p)} bytes)")
            layer, offset, total = TENSOR_HEAD.unpack_from(p)
            buf = tensors.setdefault(layer, bytearray())
            size = sizes.setdefault(layer, total)
            received = sum(len(b) for b in tensors.values()) + len(p) - TENSOR_HEAD.size
            if total != size or total > MAX_TENSOR_BYTES or offset != len(buf) \
                    or offset + len(p) - TENSOR_HEAD.size > total or received > MAX_DUMP_BYTES:
                raise TinymlError(
                    f"malformed tensor frame from {self.link.name}: layer {layer}, bytes {offset}.."
                    f"{offset + len(p) - TENSOR_HEAD.size} of {total} after {len(buf)} received"
                )
            buf += p[TENSOR_HEAD.size :]

        p = self.request(Cmd.DUMP, timeout=timeout, retries=0, on_tensor=chunk)
        incomplete = [k for k, b in tensors.items() if len(b) != sizes[k]]
        if len(p) != 2 or struct.unpack("<H", p)[0] != len(tensors) or incomplete:
            raise TinymlError(
                f"malformed DUMP reply from {self.link.name}: {len(tensors)} layers received"
                + (f", layers {incomplete} incomplete" if incomplete else "")
            )
        return {k: bytes(b) for k, b in tensors.items()}

    def exit(self) -> None:
        """Ask an emulated board to leave QEMU (exit code 0); the connection then closes."""
        try:
            self.request(Cmd.EXIT, timeout=2.0, retries=0)
        except LinkClosed:
            pass
