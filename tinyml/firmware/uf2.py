"""UF2 images and the RP2040 boot2 checksum, with the standard library only.

This file is also copied into every exported project for a board with `run.uf2_family` and run by its Makefile
(`python3 uf2.py ...`), so `make build` and `make flash` need nothing but Python 3:

    python3 uf2.py boot2-crc build/boot2.bin      # the CRC the bootrom checks, into bytes 252-255
    python3 uf2.py convert build/firmware.bin build/firmware.uf2 --base 0x10000000 --family 0xE48BFF56
    python3 uf2.py check build/firmware.uf2 --base 0x10000000 --family 0xE48BFF56 [--boot2]
    python3 uf2.py flash build/firmware.uf2 [--timeout 30] [--pyocd PATH]   # onto the RPI-RP2 drive

UF2 (https://github.com/microsoft/uf2): 512-byte little-endian blocks, each carrying 256 bytes of the image at
a 256-byte-aligned flash address, with the family ID flag set (RP2040: 0xE48BFF56). The image is padded to
4 KiB so the RP2040 bootrom writes whole sectors (erratum RP2040-E14).
"""

from __future__ import annotations

import argparse
import binascii
import os
import shutil
import struct
import sys
import time
from pathlib import Path

MAGIC0, MAGIC1, MAGIC_END = 0x0A324655, 0x9E5D5157, 0x0AB16F30
FLAG_FAMILY_ID = 0x00002000
PAYLOAD = 256
BLOCK = 512
SECTOR = 4096
BOOT2_BYTES = 256
HEADER = struct.Struct("<8I")
DRIVE_LABEL = "RPI-RP2"
_REV8 = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


class Uf2Error(Exception):
    """A UF2 file or boot2 that the RP2040 bootrom would reject, with the reason."""


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 (poly 0x04C11DB7, init 0xFFFFFFFF, not reflected, no final XOR): the RP2040 bootrom's
    boot2 check. binascii.crc32 is the reflected CRC-32 with a final XOR: fed bit-reversed bytes, its result
    undone and bit-reversed is the unreflected CRC."""
    r = binascii.crc32(data.translate(_REV8)) ^ 0xFFFFFFFF
    return int(f"{r:032b}"[::-1], 2)


def boot2_with_crc(boot2: bytes) -> bytes:
    """The 256-byte boot2 with bytes 252-255 set to the CRC of bytes 0-251."""
    if len(boot2) != BOOT2_BYTES:
        raise Uf2Error(f"boot2 is {len(boot2)} bytes, the bootrom reads exactly {BOOT2_BYTES}")
    return boot2[:252] + struct.pack("<I", crc32_mpeg2(boot2[:252]))


def to_uf2(image: bytes, base: int, family: int) -> bytes:
    """UF2 blocks for a flash image that starts at `base` (padded with zeros to whole 4 KiB sectors)."""
    if base % PAYLOAD:
        raise Uf2Error(f"image base {base:#x} is not 256-byte aligned")
    image = image + bytes(-len(image) % SECTOR)
    n = len(image) // PAYLOAD
    out = bytearray()
    for i in range(n):
        chunk = image[i * PAYLOAD : (i + 1) * PAYLOAD]
        head = HEADER.pack(MAGIC0, MAGIC1, FLAG_FAMILY_ID, base + i * PAYLOAD, PAYLOAD, i, n, family)
        out += head + chunk + bytes(BLOCK - HEADER.size - PAYLOAD - 4) + struct.pack("<I", MAGIC_END)
    return bytes(out)


def read_uf2(data: bytes, base: int, family: int) -> bytes:
    """The flash image a UF2 file writes, after checking every block: magics, flags, family, numbering, size,
    and contiguous 256-byte-aligned addresses from `base`. Raises Uf2Error naming the first bad block."""
    if not data or len(data) % BLOCK:
        raise Uf2Error(f"{len(data)} bytes is not a whole number of {BLOCK}-byte UF2 blocks")
    n = len(data) // BLOCK
    image = bytearray()
    for i in range(n):
        blk = data[i * BLOCK : (i + 1) * BLOCK]
        m0, m1, flags, addr, size, no, total, fam = HEADER.unpack_from(blk)
        (end,) = struct.unpack_from("<I", blk, BLOCK - 4)
        problems = [
            (m0, m1, end) != (MAGIC0, MAGIC1, MAGIC_END) and "bad magic",
            not flags & FLAG_FAMILY_ID and "family ID flag not set",
            fam != family and f"family {fam:#010x}, expected {family:#010x}",
            size != PAYLOAD and f"payload {size} bytes, expected {PAYLOAD}",
            (no, total) != (i, n) and f"numbered {no} of {total}, expected {i} of {n}",
            addr != base + i * PAYLOAD and f"address {addr:#x}, expected {base + i * PAYLOAD:#x}",
        ]
        bad = [p for p in problems if p]
        if bad:
            raise Uf2Error(f"UF2 block {i}: {'; '.join(bad)}")
        image += blk[HEADER.size : HEADER.size + PAYLOAD]
    if len(image) % SECTOR:
        raise Uf2Error(f"UF2 covers {len(image)} bytes, not whole 4 KiB sectors (RP2040-E14)")
    return bytes(image)


def check_boot2(image: bytes) -> None:
    """Raise Uf2Error unless the image starts with a boot2 whose CRC the bootrom accepts."""
    (stored,) = struct.unpack_from("<I", image, 252)
    want = crc32_mpeg2(image[:252])
    if stored != want:
        raise Uf2Error(f"boot2 CRC {stored:#010x} in bytes 252-255, the bootrom computes {want:#010x}")


def find_drive(roots: list[Path] | None = None) -> Path | None:
    """The mounted RPI-RP2 drive (BOOTSEL mode): $RPI_RP2_DRIVE, or a folder of that name under the usual
    mount points, recognised by its INFO_UF2.TXT."""
    env = os.environ.get("RPI_RP2_DRIVE")
    if env:
        return Path(env) if (Path(env) / "INFO_UF2.TXT").exists() else None
    user = os.environ.get("USER", "")
    roots = roots or [Path("/media") / user, Path("/media"), Path("/run/media") / user, Path("/mnt"),
                      Path("/Volumes")]
    for root in roots:
        d = root / DRIVE_LABEL
        if (d / "INFO_UF2.TXT").exists():
            return d
    return None


def flash(uf2: Path, timeout: float, pyocd: str = "pyocd") -> str:
    """Copy the UF2 to the RPI-RP2 drive (waiting up to `timeout` s for it to appear), else load it with
    picotool or pyocd when installed. Returns what was done; raises Uf2Error saying what to do otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        drive = find_drive()
        if drive is not None:
            shutil.copyfile(uf2, drive / uf2.name)
            return f"copied {uf2} to {drive}: the Pico reboots into the firmware"
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    import subprocess

    for tool, cmd in (
        ("picotool", ["picotool", "load", "-x", str(uf2)]),
        (pyocd, [pyocd, "flash", "-t", "rp2040", str(uf2.with_suffix(".elf"))]),
    ):
        if shutil.which(tool):
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=max(timeout, 60))
            except subprocess.TimeoutExpired:
                raise Uf2Error(f"{tool} took more than {max(timeout, 60):.0f} s") from None
            if r.returncode == 0:
                return f"loaded {uf2} with {tool}"
            last = (r.stderr or r.stdout).strip().splitlines()[-1:] or [""]
            sys.stderr.write(f"uf2: {' '.join(cmd)} failed: {last[0]}\n")
    raise Uf2Error(
        f"no {DRIVE_LABEL} drive appeared within {timeout:.0f} s (and picotool/pyocd did not load it): hold "
        f"BOOTSEL while plugging the Pico in, or set RPI_RP2_DRIVE to where the drive is mounted"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="uf2.py", description="UF2 images and the RP2040 boot2 CRC")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("boot2-crc", help="write the bootrom's CRC into bytes 252-255 of a 256-byte boot2")
    b.add_argument("boot2", type=Path)
    for name in ("convert", "check"):
        p = sub.add_parser(name)
        p.add_argument("input", type=Path)
        if name == "convert":
            p.add_argument("output", type=Path)
        p.add_argument("--base", type=lambda s: int(s, 0), required=True)
        p.add_argument("--family", type=lambda s: int(s, 0), required=True)
        p.add_argument("--boot2", action="store_true", help="check: the image starts with a valid boot2")
    f = sub.add_parser("flash")
    f.add_argument("uf2", type=Path)
    f.add_argument("--timeout", type=float, default=30.0)
    f.add_argument("--pyocd", default="pyocd", help="the pyocd to try after picotool (with a debug probe)")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "boot2-crc":
            a.boot2.write_bytes(boot2_with_crc(a.boot2.read_bytes()))
        elif a.cmd == "convert":
            tmp = a.output.with_suffix(".uf2.tmp")
            tmp.write_bytes(to_uf2(a.input.read_bytes(), a.base, a.family))
            os.replace(tmp, a.output)
        elif a.cmd == "check":
            image = read_uf2(a.input.read_bytes(), a.base, a.family)
            if a.boot2:
                check_boot2(image)
            print(f"{a.input}: {len(image) // PAYLOAD} blocks at {a.base:#x}, family {a.family:#010x}: ok")
        else:
            print(flash(a.uf2, a.timeout, a.pyocd))
    except (Uf2Error, OSError) as e:
        print(f"uf2: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
