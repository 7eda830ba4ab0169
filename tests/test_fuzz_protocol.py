"""A bad link: the host side against corrupted, truncated and reordered replies (in-process fuzz slice; `make
fuzz` runs 100,000 frames), each reply defect of issue 19 as a regression test, and the firmware's own frame
parser (firmware/src/protocol.c) built on the host under ASan/UBSan and fed random and mutated streams."""

from __future__ import annotations

import os
import random
import select
import struct
import subprocess
import time
from pathlib import Path

import pytest
from protocol_fuzz import fuzz_frames

from tinyml.compile import host
from tinyml.device.protocol import (
    MSG_TENSOR,
    SYNC,
    TENSOR_HEAD,
    Cmd,
    Device,
    DeviceGarbage,
    DeviceTimeout,
    encode_frame,
)
from tinyml.errors import TinymlError

REPO = Path(__file__).resolve().parent.parent
SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]


def test_host_protocol_fuzz_slice():
    r = fuzz_frames(10_000, seed=3)
    assert r["exceptions"] == 0 and r["hangs"] == 0, r["findings"]
    assert r["ok"] > 100 and r["refused"] > 100  # both paths were exercised


class ScriptLink:
    """Answers each request frame with `reply(cmd, seq, payload) -> bytes` (raw bytes on the line)."""

    name = "script-link"

    def __init__(self, reply):
        self.reply, self.rx = reply, bytearray()

    def write(self, data: bytes) -> None:
        i = data.find(SYNC)
        if i >= 0 and len(data) >= i + 6:
            cmd, seq, n = struct.unpack_from("<BBH", data, i + 2)
            self.rx += self.reply(cmd, seq, data[i + 6 : i + 6 + n])

    def read(self, n: int, timeout: float) -> bytes:
        if not self.rx:
            time.sleep(min(timeout, 0.01))
            return b""
        out = bytes(self.rx[:n])
        del self.rx[:n]
        return out


def _device(answers: dict[int, bytes], max_payload: int = 64, timeout: float = 0.3) -> Device:
    def reply(cmd, seq, payload):
        if cmd == Cmd.HELLO:
            return encode_frame(cmd | 0x80, seq, b"TINYML\x01" + struct.pack("<H", max_payload))
        return encode_frame(cmd | 0x80, seq, answers.get(cmd, b"")) if cmd in answers else b""

    return Device(ScriptLink(reply), timeout=timeout, retries=0)  # type: ignore[arg-type]


@pytest.mark.parametrize("max_payload", [0, 1, 15])
def test_device_advertising_a_tiny_max_payload_is_refused(max_payload):
    with pytest.raises(DeviceGarbage, match=f"maximum payload of {max_payload} bytes"):
        _device({}, max_payload).hello()


@pytest.mark.parametrize(
    "cmd,reply,call",
    [
        (Cmd.INVOKE, b"\x01", lambda d: d.invoke(1)),  # short but CRC-valid: was struct.error
        (Cmd.INVOKE, b"\x02\x00" + bytes(8), lambda d: d.invoke(1)),  # wrong run count
        (Cmd.PROFILE, b"\x01\x00", lambda d: d.profile()),  # was struct.error
        (Cmd.GET_OUTPUT, b"", lambda d: d.get_output(5)),  # empty reply: the host looped forever
        (Cmd.GET_OUTPUT, bytes(9), lambda d: d.get_output(5)),
    ],
    ids=["invoke_short", "invoke_count", "profile_short", "output_empty", "output_long"],
)
def test_malformed_crc_valid_replies_are_one_error(cmd, reply, call):
    d = _device({cmd: reply})
    d.hello()
    with pytest.raises(TinymlError, match=f"malformed {cmd.name} reply from script-link"):
        call(d)


def test_set_input_honours_the_timeout():
    d = _device({})  # answers HELLO only
    d.hello()
    with pytest.raises(DeviceTimeout, match="no answer to SET_INPUT from script-link within 0.3 s"):
        d.set_input(bytes(100))


def _tensor(seq: int, layer: int, offset: int, total: int, data: bytes) -> bytes:
    return encode_frame(MSG_TENSOR, seq, TENSOR_HEAD.pack(layer, offset, total) + data)


def test_dump_reassembles_chunked_tensors():
    def reply(cmd, seq, payload):
        assert cmd == Cmd.DUMP
        return (_tensor(seq, 0, 0, 5, b"abc") + _tensor(seq, 0, 3, 5, b"de") + _tensor(seq, 2, 0, 1, b"z")
                + encode_frame(Cmd.DUMP | 0x80, seq, struct.pack("<H", 2)))

    assert Device(ScriptLink(reply), timeout=1.0).dump() == {0: b"abcde", 2: b"z"}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "frames, count",
    [
        ([(0, 1, 3, b"bc")], 1),  # a chunk out of order
        ([(0, 0, 4, b"ab")], 1),  # a tensor cut short
        ([(0, 0, 2, b"abc")], 1),  # more bytes than announced
        ([(0, 0, 1 << 30, b"a")], 1),  # a size no board has
        ([(0, 0, 1, b"a"), (0, 0, 1, b"a")], 1),  # a chunk twice
        ([(0, 0, 1, b"a")], 2),  # the reply counts a layer that never came
    ],
)
def test_malformed_dumps_are_one_error(frames, count):
    def reply(cmd, seq, payload):
        return b"".join(_tensor(seq, *f) for f in frames) + encode_frame(Cmd.DUMP | 0x80, seq,
                                                                          struct.pack("<H", count))

    with pytest.raises(TinymlError, match="malformed (tensor frame|DUMP reply) from script-link"):
        Device(ScriptLink(reply), timeout=1.0).dump()  # type: ignore[arg-type]


# ---- the firmware's parser on the host ----


@pytest.fixture(scope="module")
def parser_exe(tmp_path_factory) -> Path:
    exe = tmp_path_factory.mktemp("protocol") / "protocol_host"
    cmd = [host.host_cc(), "-std=c11", "-Wall", "-Wextra", "-Werror", *SAN, "-D_POSIX_C_SOURCE=200809L",
           "-I", str(REPO / "tests" / "fuzz_harness"), "-I", str(REPO / "firmware" / "src"),
           str(REPO / "tests" / "fuzz_harness" / "protocol_host.c"),
           str(REPO / "firmware" / "src" / "protocol.c"),
           "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return exe


def _stream(rng: random.Random, frames: int) -> bytes:
    """Valid frames interleaved with their corruptions, false syncs, huge lengths and noise."""
    out = bytearray()
    for _ in range(frames):
        f = encode_frame(rng.randrange(256), rng.randrange(256), bytes(rng.randrange(256) for _ in
                                                                        range(rng.choice((0, 1, 9, 300)))))
        k = rng.randrange(6)
        if k == 0:
            f = f[: rng.randrange(len(f))]
        elif k == 1:
            b = bytearray(f)
            b[rng.randrange(len(b))] ^= 0xFF
            f = bytes(b)
        elif k == 2:
            f = SYNC + bytes([1, 2]) + struct.pack("<H", rng.choice((1024, 1025, 0xFFFF, 2000))) + f
        elif k == 3:
            f = bytes(rng.randrange(256) for _ in range(rng.randrange(40))) + f
        out += f
    return bytes(out)


def _run_parser(exe: Path, data: bytes) -> int:
    r = subprocess.run([str(exe), "fuzz"], input=data, capture_output=True, timeout=120)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0 and err.startswith("sent ") and "runtime error" not in err, err[-2000:]
    return int(err.split()[1])


def test_firmware_parser_echoes_every_clean_frame(parser_exe):
    rng = random.Random(0)
    frames = [encode_frame(rng.randrange(0x7F), i & 0xFF, bytes(rng.randrange(256) for _ in range(i % 50)))
              for i in range(200)]
    data = b"".join(frames)
    assert _run_parser(parser_exe, data) == len(data)  # each frame answered by a frame of its own size


@pytest.mark.parametrize("seed", range(4))
def test_firmware_parser_fuzz_under_sanitizers(parser_exe, seed):
    rng = random.Random(seed)
    data = _stream(rng, 3000) + os.urandom(0) + bytes(rng.randrange(256) for _ in range(20000))
    assert _run_parser(parser_exe, data) > 0


class PipeLink:
    """The host-built parser in device mode, as a link."""

    name = "protocol_host"

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc

    def write(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read(self, n: int, timeout: float) -> bytes:
        ready, _, _ = select.select([self.proc.stdout], [], [], min(timeout, 1.0))
        return os.read(self.proc.stdout.fileno(), n) if ready else b""


def test_handshake_resynchronises_through_noise(parser_exe):
    """Noise that looks like the start of a long frame swallows HELLOs on the device; the host's resync burst
    completes that frame so the next HELLO is parsed (before: hello failed after all its tries)."""
    proc = subprocess.Popen([str(parser_exe), "device"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        link = PipeLink(proc)
        link.write(b"\x13\x37" + SYNC + bytes([0x33, 0x99]) + struct.pack("<H", 1000))  # noise, a false frame
        assert Device(link, timeout=2.0).hello(timeout=2.0, tries=1).max_payload == 1024  # type: ignore[arg-type]
    finally:
        proc.kill()
        proc.wait()
