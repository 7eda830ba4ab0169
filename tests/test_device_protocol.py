"""Host-side framing: CRC, and recovery from noise, false syncs and corrupt frames (no device needed)."""

from __future__ import annotations

import time

import pytest

from tinyml.device.protocol import (
    MAX_GARBAGE,
    DeviceGarbage,
    DeviceTimeout,
    FrameReader,
    crc16_ccitt,
    encode_frame,
)


class BytesLink:
    """A link that replays fixed bytes (in small pieces, like a serial port) and then stays silent."""

    name = "test-link"

    def __init__(self, data: bytes, piece: int = 3):
        self.data, self.piece = bytearray(data), piece

    def read(self, n: int, timeout: float) -> bytes:
        if not self.data:
            time.sleep(min(timeout, 0.01))
            return b""
        out = bytes(self.data[: min(n, self.piece)])
        del self.data[: len(out)]
        return out


def test_crc16_ccitt_false_check_value():
    assert crc16_ccitt(b"123456789") == 0x29B1  # the catalogued check value of CRC-16/CCITT-FALSE
    assert crc16_ccitt(b"") == 0xFFFF


def test_frame_layout():
    f = encode_frame(0x02, 7, b"\x01\x02")
    assert f[:2] == b"\xa5\x5a" and f[2:6] == bytes([0x02, 7, 2, 0]) and f[6:8] == b"\x01\x02"
    assert int.from_bytes(f[8:], "little") == crc16_ccitt(f[2:8])


GOOD = encode_frame(0x82, 9, b"payload")
BAD_CRC = GOOD[:-1] + bytes([GOOD[-1] ^ 0xFF])
# (bytes on the line before the good frame, what they exercise)
STREAMS = [
    (b"", "clean"),
    (b"hello world\r\n\x00\xff", "line noise"),
    (b"\xa5\xa5\x5a"[:1], "a lone first sync byte"),
    (b"\xa5", "sync byte right before the real sync"),
    (BAD_CRC, "a frame with a bad CRC"),
    (b"\xa5\x5a\x01\x01\xff\xff", "a false sync claiming an impossible length"),
    (b"\xa5\x5a\x01\x01\x0a\x00", "a false sync whose length swallows the real frame's start"),
    (encode_frame(0x83, 4, b"other") + b"\x00", "another good frame first"),
]


@pytest.mark.parametrize("prefix,what", STREAMS)
def test_reader_finds_the_good_frame(prefix, what):
    reader = FrameReader(BytesLink(prefix + GOOD), max_payload=1024)
    deadline = time.monotonic() + 2
    frames = []
    while not frames or frames[-1].seq != 9:
        frames.append(reader.read(deadline))
    assert frames[-1].cmd == 0x82 and frames[-1].payload == b"payload"
    assert all(f.seq in (4, 9) for f in frames)


def test_reader_times_out_without_losing_a_partial_frame():
    link = BytesLink(GOOD[:5])
    reader = FrameReader(link)
    with pytest.raises(DeviceTimeout):
        reader.read(time.monotonic() + 0.2)
    link.data += GOOD[5:]  # the rest arrives late: the frame is still whole
    assert reader.read(time.monotonic() + 1).payload == b"payload"


def test_reader_gives_up_on_a_line_of_garbage():
    reader = FrameReader(BytesLink(bytes(range(7, 250)) * 40, piece=64))
    t0 = time.monotonic()
    with pytest.raises(
        DeviceGarbage, match=r"test-link sends data that is not tinyml frames \(first bytes: 07 08"
    ):
        reader.read(time.monotonic() + 10)
    assert time.monotonic() - t0 < 5 and len(reader.garbage) > MAX_GARBAGE
