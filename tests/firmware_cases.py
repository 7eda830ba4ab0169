"""Models and builds shared by the firmware and device tests, made once per test session.

- small_model: a MobileNet-like int8 model (conv, depthwise, pointwise, mean, FC, softmax) from TF, small
  enough that every board builds and runs it in a second or two;
- person_elf: person_detect built for the default board (the numbers FACTS.md compares against);
- selftest_elf: the hand-written contract model (tinyml/firmware/selftest) for protocol tests, no TF needed
  (selftest_m0_elf: the same on the ARMv6-M board).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tinyml.device.protocol import Device
from tinyml.device.transport import Link, QemuBoard
from tinyml.firmware.boards import BOARDS_DIR, Board, load_board
from tinyml.firmware.project import SELFTEST_MODEL, build_project, export_project

_made: dict[str, Path] = {}


@pytest.fixture(scope="session")
def small_model(artifacts) -> Path:
    if "small" not in _made:
        from compile_cases import CASES, convert

        case = next(c for c in CASES if c.name == "mini_mobilenet")
        out = artifacts / "firmware_models"
        out.mkdir(parents=True, exist_ok=True)
        _made["small"] = convert(case, out)
    return _made["small"]


def build(model: Path, board: str | Board, out: Path, profile: bool = False) -> Path:
    b = load_board(board) if isinstance(board, str) else board
    return build_project(export_project(model, b, out, profile=profile)).elf


@pytest.fixture(scope="session")
def selftest_elf(artifacts) -> Path:
    return build(SELFTEST_MODEL, "cortex-m", artifacts / "fw-selftest")


@pytest.fixture(scope="session")
def selftest_m0_elf(artifacts) -> Path:
    """The contract model on the ARMv6-M board (cortex-m0): fault report and protocol without DSP or IT."""
    return build(SELFTEST_MODEL, "cortex-m0", artifacts / "fw-selftest-m0")


@pytest.fixture(scope="session")
def person_elf(artifacts, refdata) -> Path:
    return build(refdata / "models" / "person_detect.tflite", "cortex-m", artifacts / "fw-person")


@contextmanager
def qemu_device(
    elf: Path, board: str = "cortex-m", timeout: float = 10.0
) -> Iterator[tuple[QemuBoard, Device]]:
    with QemuBoard(load_board(board), elf) as q, Link(q.url) as link:
        dev = Device(link, timeout=timeout)
        dev.hello()
        yield q, dev


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def board_variant(d: Path, name: str, flash: int | None = None, ram: int | None = None) -> Path:
    """cortex-m.toml under another name with less flash or RAM: still QEMU mps2-an386, but the budget and
    the linker see the smaller memory."""
    text = (BOARDS_DIR / "cortex-m.toml").read_text().replace('name = "cortex-m"', f'name = "{name}"')
    for key, size in (("flash_size", flash), ("ram_size", ram)):
        if size is not None:
            text = text.replace(f"{key} = 0x00400000", f"{key} = {size:#x}")
            assert f"{key} = {size:#x}" in text, key
    path = d / f"{name}.toml"
    path.write_text(text)
    return path
