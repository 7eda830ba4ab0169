"""Board files: every one loads, emulated ones match the verified QEMU memory maps, bad files are named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tinyml.errors import TinymlError
from tinyml.firmware.boards import BOARDS_DIR, board_names, load_board

# From FACTS.md and BOARDS.md (checked with QEMU 7.2): machine, -mcpu, code base, RAM base, UART0 (and its
# kind), SysTick clock.
CMSDK = "cmsdk"
EMULATED = [
    ("cortex-m", "mps2-an386", "cortex-m4", 0x00000000, 0x20000000, (0x40004000, CMSDK), 25_000_000),
    ("mps2-an385", "mps2-an385", "cortex-m3", 0x00000000, 0x20000000, (0x40004000, CMSDK), 25_000_000),
    ("mps2-an500", "mps2-an500", "cortex-m7", 0x00000000, 0x20000000, (0x40004000, CMSDK), 25_000_000),
    ("mps2-an505", "mps2-an505", "cortex-m33", 0x10000000, 0x38000000, (0x50200000, CMSDK), 20_000_000),
    ("mps3-an547", "mps3-an547", "cortex-m55", 0x00000000, 0x20000000, (0x59303000, CMSDK), 32_000_000),
    ("cortex-m0", "microbit", "cortex-m0plus", 0x00000000, 0x20000000, (0x40002000, "nrf51"), 16_000_000),
]
REAL = [
    ("nucleo-l4r5zi", "cortex-m4", "stm32l4r5zitx", 0x200000, 0xA0000),
    ("nucleo-f767zi", "cortex-m7", "stm32f767zi", 0x200000, 0x80000),
]


def test_every_board_file_loads_under_its_own_name():
    names = board_names()
    assert {e[0] for e in EMULATED} | {r[0] for r in REAL} <= set(names)
    for n in names:
        b = load_board(n)
        assert b.name == n and b.path == (BOARDS_DIR / f"{n}.toml").resolve()
        assert b.unit == ("instructions" if b.emulated else "cycles")


@pytest.mark.parametrize("name,machine,mcpu,flash,ram,uart,timer_hz", EMULATED)
def test_emulated_boards_match_qemu(name, machine, mcpu, flash, ram, uart, timer_hz):
    b = load_board(name)
    assert (b.qemu_machine, b.mcpu, b.flash_base, b.ram_base, (b.uart_base, b.uart_kind), b.timer_hz) == (
        machine,
        mcpu,
        flash,
        ram,
        uart,
        timer_hz,
    )
    assert b.emulated and b.timer == "systick"
    # exact instruction counts need more than two SysTick ticks per instruction
    num, den = b.tick_ns
    assert (1 << b.icount_shift) * den > 2 * num
    cmd = b.qemu_command(Path("fw.elf"))
    assert cmd[cmd.index("-M") + 1] == machine and f"shift={b.icount_shift},align=off,sleep=off" in cmd


def test_cortex_m0_is_armv6m_with_the_memory_qemu_is_given():
    """The micro:bit's nRF51 is enlarged to a Pico's memory: QEMU gets exactly the sizes the linker uses."""
    b = load_board("cortex-m0")
    assert b.armv6m and not b.dsp and not b.has_fpu and b.float_abi == "soft"
    assert "-masm-syntax-unified" in b.arch_flags
    m4 = load_board("cortex-m")
    assert not m4.armv6m and "-masm-syntax-unified" not in m4.arch_flags
    cmd = b.qemu_command(Path("fw.elf"))
    assert f"nrf51-soc.flash-size={b.flash_size:#x}" in cmd and f"nrf51-soc.sram-size={b.ram_size:#x}" in cmd
    assert (b.flash_size, b.ram_size) == (2 << 20, 264 << 10)
    assert b.icount_shift >= 7  # BOARDS.md: SysTick at 16 MHz is exact from shift 7


def test_netduinoplus2_matches_the_qemu_machine():
    """BOARDS.md: USART1 is QEMU's first serial, flash at 0x08000000, SysTick at 168 MHz, RCC not modelled."""
    b = load_board("netduinoplus2")
    assert (b.qemu_machine, b.mcpu, b.flash_base, b.ram_base, b.uart_base, b.timer_hz) == (
        "netduinoplus2", "cortex-m4", 0x08000000, 0x20000000, 0x40011000, 168_000_000
    )
    assert (b.uart_kind, b.soc_family, b.soc["clock_setup"]) == ("stm32f4", "stm32f4", False)
    num, den = b.tick_ns
    assert (1 << b.icount_shift) * den > 2 * num


def test_nano33ble_is_an_nrf52840_after_the_arduino_bootloader():
    b = load_board("nano33ble")
    assert (b.mcpu, b.clock_hz, b.uart_kind, b.uart_base, b.timer, b.pyocd_target) == (
        "cortex-m4", 64_000_000, "nrf52", 0x40002000, "dwt", "nrf52840"
    )
    assert (b.flash_base, b.flash_base + b.flash_size, b.ram_size) == (0x10000, 1 << 20, 256 << 10)
    assert not b.emulated and b.bossac and (b.soc["uart_tx"], b.soc["uart_rx"]) == ("P1.03", "P1.10")


@pytest.mark.parametrize("name,mcpu,target,flash_size,ram_size", REAL)
def test_real_boards(name, mcpu, target, flash_size, ram_size):
    b = load_board(name)
    assert (b.mcpu, b.pyocd_target, b.flash_size, b.ram_size) == (mcpu, target, flash_size, ram_size)
    assert not b.emulated and b.timer == "dwt" and b.uart_kind == "stm32" and b.has_fpu


def test_board_by_path(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text((BOARDS_DIR / "cortex-m.toml").read_text().replace('name = "cortex-m"', 'name = "mine"'))
    assert load_board(p).name == "mine"
    assert load_board(str(p)).ram_size == load_board("cortex-m").ram_size


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(TinymlError, match=r"unknown board 'nope'.*cortex-m.*nucleo-l4r5zi"):
        load_board("nope")


# (what to change in cortex-m.toml, what the error must name)
BROKEN = [
    (("\n[clock]\nhz = 25_000_000", "\n[clock]"), "clock.hz"),
    (('kind = "cmsdk"', 'kind = "ns16550"'), "board 'cortex-m' has uart.kind = 'ns16550' but there is no"),
    (('kind = "cmsdk"', 'kind = "ns16550"'), "uart_ns16550.c (write one, or use one of: cmsdk, nrf51, "),
    (('kind = "systick"', 'kind = "rtc"'), "timer_rtc.c"),
    (('kind = "systick"', 'kind = "../main"'), "timer.kind = '../main'"),
    (('kind = "systick"', 'kind = "dwt"'), "QEMU has no DWT"),
    (("icount_shift = 7", "icount_shift = 5"), "icount_shift 5 is too small"),
    (('family = "mps"', 'family = "esp32"'), "no driver file"),
    (('family = "mps"', 'family = "esp32"'), "soc_esp32.c"),
    (('machine = "mps2-an386"', "machine = 386"), "'run.machine' must be str"),
    (("ram_size = 0x00400000", "ram_size = 0"), "ram_size must be positive"),
    (('name = "cortex-m"', 'name = "a b"'), "name 'a b'"),
    (("[cpu]", "[cpu\n"), "board file"),
]


@pytest.mark.parametrize("change,message", BROKEN)
def test_broken_board_files_are_named(tmp_path, change, message):
    text = (BOARDS_DIR / "cortex-m.toml").read_text()
    old, new = change
    assert old in text
    p = tmp_path / "broken.toml"
    p.write_text(text.replace(old, new, 1))
    with pytest.raises(TinymlError, match=re.escape(message)) as e:
        load_board(p)
    assert str(p) in str(e.value)
