"""Fuzzing the host side of the serial protocol (tinyml/device/protocol.py) in-process.

A scripted device answers every request correctly, then the reply is corrupted at random: bits flipped, frames
truncated, payloads cut or padded under a valid CRC, wrong seq or cmd, error and fault frames, duplicates,
replies held back and delivered after the next one (reordered), line noise, bogus HELLO limits. Time is
virtual (the link advances a clock instead of sleeping), so 100,000 frames take seconds, and every operation
also runs under a wall-clock alarm: an uncaught exception (anything but a TinymlError) or an alarm is a
finding.
"""

from __future__ import annotations

import random
import signal
import struct
import traceback
from collections import Counter
from collections.abc import Callable

from tinyml.device import protocol
from tinyml.device.protocol import HEADER, SYNC, Cmd, Device, encode_frame
from tinyml.errors import TinymlError

DUMP_LAYERS = ((0, 5), (1, 130), (3, 1))  # (layer, output bytes) the fuzzed device dumps


class VirtualClock:
    def __init__(self):
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t


class FuzzedDevice:
    """A link whose other end is a correct device behind a corrupting line."""

    name = "fuzz-link"

    def __init__(self, clock: VirtualClock, rng: random.Random, max_payload: int = 64):
        self.clock, self.rng, self.max_payload = clock, rng, max_payload
        self.rx = bytearray()  # bytes on their way to the host
        self.held: list[bytes] = []  # replies delayed until the next one (reordering)
        self.inbox = bytearray()  # host bytes not yet parsed
        self.frames = 0
        self.input = bytearray(4096)

    # -- the link interface Device uses --
    def read(self, n: int, timeout: float) -> bytes:
        if not self.rx:
            self.clock.t += max(0.0, min(timeout, 1.0))
            return b""
        k = min(n, self.rng.choice((1, 2, 3, 64, n)))
        out = bytes(self.rx[:k])
        del self.rx[:k]
        return out

    def write(self, data: bytes) -> None:
        self.inbox += data
        while True:
            i = self.inbox.find(SYNC)
            if i < 0:
                del self.inbox[: max(0, len(self.inbox) - 1)]
                return
            del self.inbox[:i]
            if len(self.inbox) < 2 + HEADER.size:
                return
            cmd, seq, length = HEADER.unpack_from(self.inbox, 2)
            end = 2 + HEADER.size + length + 2
            if len(self.inbox) < end:
                return
            payload = bytes(self.inbox[2 + HEADER.size : end - 2])
            del self.inbox[:end]
            if cmd == Cmd.DUMP:  # every layer's output first, each frame corrupted on its own
                for chunk in self._dump_chunks():
                    self._deliver(self._corrupt(protocol.MSG_TENSOR, seq, chunk))
            self._deliver(self._corrupt(cmd, seq, self._answer(cmd, payload)))

    # -- the device --
    def _answer(self, cmd: int, p: bytes) -> bytes:
        if cmd == Cmd.HELLO:
            mp = self.max_payload if self.rng.random() > 0.05 else self.rng.choice((0, 1, 2, 15, 16, 0xFFFF))
            return b"TINYML" + bytes([protocol.VERSION]) + struct.pack("<H", mp)
        if cmd == Cmd.INFO:
            return b"board=fuzz\nunit=instructions\noutput_bytes=7\n"
        if cmd == Cmd.SET_INPUT and len(p) >= 4:
            return b""
        if cmd == Cmd.INVOKE and len(p) == 2:
            (n,) = struct.unpack("<H", p)
            return struct.pack("<H", n) + b"".join(struct.pack("<Q", 1000 + i) for i in range(n))
        if cmd == Cmd.GET_OUTPUT and len(p) == 6:
            off, n = struct.unpack("<IH", p)
            return bytes(self.input[off : off + n])
        if cmd == Cmd.PROFILE and len(p) == 2:
            (first,) = struct.unpack("<H", p)
            layers = 9
            n = max(0, min(layers - first, (self.max_payload - 6) // 8))
            return struct.pack("<HHH", layers, first, n) + b"\x01" * 8 * n
        if cmd == Cmd.DUMP:
            return struct.pack("<H", len(DUMP_LAYERS))
        return b"\xff"

    def _dump_chunks(self) -> list[bytes]:
        step = self.max_payload - protocol.TENSOR_HEAD.size
        return [protocol.TENSOR_HEAD.pack(layer, off, n) + bytes(self.input[off : min(off + step, n)])
                for layer, n in DUMP_LAYERS for off in range(0, n, step)]

    def _corrupt(self, cmd: int, seq: int, payload: bytes) -> list[bytes]:
        """The frames that reach the host for one reply."""
        self.frames += 1
        rng, rcmd = self.rng, cmd | protocol.REPLY
        good = encode_frame(rcmd, seq, payload)
        r = rng.random()
        if r < 0.55:
            return [good]
        kind = rng.randrange(12)
        if kind == 0:  # flipped bits
            b = bytearray(good)
            for _ in range(rng.choice((1, 2, 5))):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            return [bytes(b)]
        if kind == 1:  # truncated frame
            return [good[: rng.randrange(len(good))]]
        if kind == 2:  # payload cut or padded, CRC valid
            cut = payload[: rng.randrange(len(payload) + 1)] if rng.random() < 0.7 else payload + b"\x00" * 9
            return [encode_frame(rcmd, seq, cut)]
        if kind == 3:  # wrong seq
            return [encode_frame(rcmd, (seq + rng.choice((1, 255, 7))) & 0xFF, payload)]
        if kind == 4:  # wrong cmd
            return [encode_frame(rng.randrange(256), seq, payload)]
        if kind == 5:  # an error reply (ours or about noise)
            head = bytes([rng.randrange(9), rng.choice((cmd, 0, 0x33))])
            return [encode_frame(protocol.MSG_ERROR, seq, head + b"boom"[: rng.randrange(5)])]
        if kind == 6:  # a fault report
            return [encode_frame(protocol.MSG_FAULT, rng.randrange(256), b"HardFault pc=0x0")]
        if kind == 7:  # duplicated
            return [good, good]
        if kind == 8:  # held back: arrives after the next reply
            self.held.append(good)
            return []
        if kind == 9:  # noise first
            return [bytes(rng.randrange(256) for _ in range(rng.choice((1, 8, 200)))) + good]
        if kind == 10:  # a false sync claiming a long frame, then the real one
            return [SYNC + bytes([1, 1]) + struct.pack("<H", rng.randrange(0x10000)) + good]
        return []  # lost

    def _deliver(self, frames: list[bytes]) -> None:
        for f in frames:
            self.rx += f
        if frames and self.held:
            self.rx += self.held.pop(0)


class Alarm(Exception):
    pass


def _on_alarm(signum, frame):
    raise Alarm()


def _session(dev: Device, rng: random.Random) -> list[Callable[[], object]]:
    return [
        dev.hello,
        dev.info,
        lambda: dev.set_input(bytes(rng.randrange(1, 600))),
        lambda: dev.invoke(rng.choice((1, 2, 5, 40))),
        lambda: dev.get_output(rng.choice((1, 7, 100, 300))),
        dev.profile,
        dev.dump,
    ]


def fuzz_frames(n_frames: int, seed: int = 0, wall_limit: float = 5.0,
                progress: Callable[[int, dict], None] | None = None) -> dict:
    """Run device sessions until n_frames replies were corrupted-or-not; counts of outcomes and findings."""
    rng = random.Random(seed)
    clock = VirtualClock()
    counts: Counter = Counter()
    findings: list[str] = []
    saved_time, saved_handler = protocol.time, signal.signal(signal.SIGALRM, _on_alarm)
    protocol.time = clock  # type: ignore[assignment]  # Device and FrameReader read the virtual clock
    frames, next_report = 0, 10_000
    try:
        while frames < n_frames:
            link = FuzzedDevice(clock, rng, max_payload=rng.choice((16, 17, 64, 100)))
            dev = Device(link, timeout=1.0, retries=rng.choice((0, 2)))  # type: ignore[arg-type]
            for op in _session(dev, rng):
                signal.setitimer(signal.ITIMER_REAL, wall_limit)
                try:
                    op()
                    counts["ok"] += 1
                except TinymlError:
                    counts["refused"] += 1
                except Alarm:
                    counts["hangs"] += 1
                    findings.append(f"hang in {getattr(op, '__name__', 'op')}")
                except Exception:
                    counts["exceptions"] += 1
                    findings.append(traceback.format_exc(limit=4))
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            frames += link.frames
            if progress and frames >= next_report:
                next_report += 10_000
                progress(frames, dict(counts))
    finally:
        protocol.time = saved_time
        signal.signal(signal.SIGALRM, saved_handler)
    return {"frames_sent": frames, "ok": counts["ok"], "refused": counts["refused"],
            "exceptions": counts["exceptions"], "hangs": counts["hangs"], "findings": findings[:20]}
