"""Boards: one TOML file per board in `boards/` (or any path), read into a frozen `Board`.

A board file says everything the firmware build and the runner need: the core's compiler flags, where flash
and RAM are, the clock, which UART driver and where, which timer, and how to run it (QEMU machine, or pyocd
target).
Adding a board is adding a file. Its drivers are found by file name and listed nowhere else:
`uart.kind = "X"` builds `firmware/src/uart_X.c`, `timer.kind` `timer_X.c`, `soc.family` `soc_X.c`; a new
UART, timer or SoC is one C file there.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyml.errors import TinymlError, UsageError

# Inside the package so a wheel carries them; in the repository these are links to boards/ and firmware/src/.
BOARDS_DIR = Path(__file__).resolve().parent.parent / "boards"
FIRMWARE_SRC = Path(__file__).resolve().parent / "src"
DEFAULT_BOARD = "cortex-m"
# (board-file key, file-name prefix) of the drivers a board selects: firmware/src/<prefix>_<value>.c
DRIVER_KEYS = (("uart.kind", "uart"), ("timer.kind", "timer"), ("soc.family", "soc"))
RUN_KINDS = ("qemu", "pyocd")
ARMV6M_CPUS = ("cortex-m0", "cortex-m0plus", "cortex-m1")


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    path: Path
    # core
    mcpu: str
    fpu: str  # -mfpu value, or "none"
    float_abi: str
    dsp: bool
    # memory
    flash_base: int
    flash_size: int
    ram_base: int
    ram_size: int
    clock_hz: int
    # flash wait states at clock_hz and the flash cache in front (est. cycles' memory bound); None: unknown
    flash_wait_states: int | None
    # serial
    uart_kind: str
    uart_base: int
    uart_clock_hz: int
    baud: int
    lpuart: bool
    # timing
    timer: str
    timer_hz: int
    flash_cache: str
    # SoC bring-up (soc_<family>.c); extra keys become TINYML_SOC_* macros
    soc_family: str
    soc: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    # running
    run_kind: str = "qemu"
    qemu_machine: str = ""
    icount_shift: int = 0
    qemu_args: tuple[str, ...] = ()
    pyocd_target: str = ""
    pyocd_pack: str = ""
    bossac: bool = False  # also `make flash-bossac`: an Arduino bootloader takes the image over USB serial
    uf2_family: int = 0  # UF2 family ID: `make build` also writes build/firmware.uf2, `make flash` copies it
    boot2_bytes: int = 0  # a second-stage boot the bootrom CRC-checks at the start of flash (RP2040: 256)

    @property
    def drivers(self) -> dict[str, str]:
        """Board-file key -> the value it selects (e.g. 'uart.kind' -> 'cmsdk')."""
        values = {"uart.kind": self.uart_kind, "timer.kind": self.timer, "soc.family": self.soc_family}
        return {key: values[key] for key, _ in DRIVER_KEYS}

    def driver_sources(self) -> list[Path]:
        """The driver C files this board selects: uart_<kind>.c, timer_<kind>.c, soc_<family>.c."""
        return [FIRMWARE_SRC / f"{prefix}_{self.drivers[key]}.c" for key, prefix in DRIVER_KEYS]

    @property
    def emulated(self) -> bool:
        return self.run_kind == "qemu"

    @property
    def unit(self) -> str:
        """What the device's counts are: exact instructions under QEMU icount, core cycles on silicon."""
        return "instructions" if self.emulated else "cycles"

    @property
    def has_fpu(self) -> bool:
        return self.fpu != "none"

    @property
    def armv6m(self) -> bool:
        """Cortex-M0/M0+/M1: Thumb-1 plus a few 32-bit instructions; no IT, no divide, no fault status."""
        return self.mcpu in ARMV6M_CPUS

    @property
    def arch_flags(self) -> list[str]:
        flags = [f"-mcpu={self.mcpu}", "-mthumb", f"-mfloat-abi={self.float_abi}"]
        if self.has_fpu:
            flags.append(f"-mfpu={self.fpu}")
        if self.armv6m:  # GCC 12 assembles Thumb-1 inline asm as divided syntax: `adds r1, r1, #1` fails
            flags.append("-masm-syntax-unified")
        return flags

    @property
    def tick_ns(self) -> tuple[int, int]:
        """Nanoseconds per timer tick as an exact fraction (numerator, denominator)."""
        g = math.gcd(1_000_000_000, self.timer_hz)
        return 1_000_000_000 // g, self.timer_hz // g

    def qemu_command(
        self, elf: Path, port: int = 0, host: str = "127.0.0.1", pidfile: Path | None = None
    ) -> list[str]:
        """QEMU with the image, a TCP serial server (port 0: the OS picks) and exact instruction timing."""
        cmd = [
            "qemu-system-arm",
            "-M",
            self.qemu_machine,
            "-display",
            "none",
            "-monitor",
            "none",
            "-icount",
            f"shift={self.icount_shift},align=off,sleep=off",
            "-semihosting-config",
            "enable=on,target=native",
            "-chardev",
            f"socket,id=s0,host={host},port={port},server=on,wait=on,nodelay=on",
            "-serial",
            "chardev:s0",
            *self.qemu_args,
            "-kernel",
            str(elf),
        ]
        if pidfile is not None:
            cmd[-2:-2] = ["-pidfile", str(pidfile)]
        return cmd


def board_names() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.toml"))


def load_board(name_or_path: str | Path = DEFAULT_BOARD) -> Board:
    """A board by name (boards/NAME.toml) or by path to a TOML file."""
    p = Path(name_or_path)
    if p.suffix != ".toml":
        p = BOARDS_DIR / f"{name_or_path}.toml"
    if not p.exists():
        raise UsageError(
            f"unknown board '{name_or_path}': known boards are {', '.join(board_names())} "
            f"(or pass a path to a board .toml)"
        )
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise TinymlError(f"board file {p}: {e}") from None
    return _parse(data, p)


def _get(data: dict, key: str, kind: type, where: Path, default: Any = ...) -> Any:
    """data['a.b'] with a type check and an error naming the file and key."""
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is not ...:
                return default
            raise TinymlError(f"board file {where}: missing '{key}'")
        node = node[part]
    if kind is int and isinstance(node, bool) or not isinstance(node, kind):
        raise TinymlError(f"board file {where}: '{key}' must be {kind.__name__}, got {node!r}")
    return node


def _parse(data: dict, p: Path) -> Board:
    if "stack_bytes" in data.get("memory", {}):
        raise TinymlError(
            f"board file {p}: memory.stack_bytes is no longer configured: the build derives the stack from "
            "-fstack-usage and the call graph; remove the key"
        )
    clock_hz = _get(data, "clock.hz", int, p)
    run_kind = _get(data, "run.kind", str, p)
    b = Board(
        name=_get(data, "name", str, p),
        description=_get(data, "description", str, p, ""),
        path=p.resolve(),
        mcpu=_get(data, "cpu.mcpu", str, p),
        fpu=_get(data, "cpu.fpu", str, p, "none"),
        float_abi=_get(data, "cpu.float_abi", str, p, "soft"),
        dsp=_get(data, "cpu.dsp", bool, p, False),
        flash_base=_get(data, "memory.flash_base", int, p),
        flash_size=_get(data, "memory.flash_size", int, p),
        ram_base=_get(data, "memory.ram_base", int, p),
        ram_size=_get(data, "memory.ram_size", int, p),
        clock_hz=clock_hz,
        flash_wait_states=_get(data, "memory.flash_wait_states", int, p, None),
        flash_cache=_get(data, "memory.flash_cache", str, p, ""),
        uart_kind=_get(data, "uart.kind", str, p),
        uart_base=_get(data, "uart.base", int, p),
        uart_clock_hz=_get(data, "uart.clock_hz", int, p, clock_hz),
        baud=_get(data, "uart.baud", int, p, 115200),
        lpuart=_get(data, "uart.lpuart", bool, p, False),
        timer=_get(data, "timer.kind", str, p),
        timer_hz=_get(data, "timer.hz", int, p, clock_hz),
        soc_family=_get(data, "soc.family", str, p),
        soc={k: v for k, v in data.get("soc", {}).items() if k != "family"},
        run_kind=run_kind,
        qemu_machine=_get(data, "run.machine", str, p, ""),
        icount_shift=_get(data, "run.icount_shift", int, p, 0),
        qemu_args=tuple(_get(data, "run.args", list, p, [])),
        pyocd_target=_get(data, "run.target", str, p, ""),
        pyocd_pack=_get(data, "run.pack", str, p, ""),
        bossac=_get(data, "run.bossac", bool, p, False),
        uf2_family=_get(data, "run.uf2_family", int, p, 0),
        boot2_bytes=_get(data, "memory.boot2_bytes", int, p, 0),
    )
    _validate(b)
    return b


def _validate(b: Board) -> None:
    where = f"board file {b.path}"
    _check_drivers(b, where)
    if b.run_kind not in RUN_KINDS:
        raise TinymlError(f"{where}: run.kind must be one of {', '.join(RUN_KINDS)}, got '{b.run_kind}'")
    if b.emulated:
        if not b.qemu_machine:
            raise TinymlError(f"{where}: run.machine (the QEMU -M name) is required for run.kind = 'qemu'")
        if b.timer == "dwt":
            raise TinymlError(f"{where}: QEMU has no DWT cycle counter; use timer.kind = 'systick'")
        # Exact counts need more than two ticks per instruction (see firmware/src/timer_systick.c).
        num, den = b.tick_ns
        if (1 << b.icount_shift) * den <= 2 * num:
            raise TinymlError(
                f"{where}: run.icount_shift {b.icount_shift} is too small for exact instruction "
                f"counts at timer.hz {b.timer_hz} (need 2^shift ns > 2 ticks)"
            )
    elif not b.pyocd_target:
        raise TinymlError(f"{where}: run.target (the pyocd target name) is required for run.kind = 'pyocd'")
    if b.boot2_bytes not in (0, 256):
        raise TinymlError(f"{where}: memory.boot2_bytes must be 256 (the RP2040 bootrom's) or absent")
    if b.boot2_bytes and not b.uf2_family:
        raise TinymlError(f"{where}: memory.boot2_bytes needs run.uf2_family (its CRC is checked in the UF2)")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", b.name):
        raise TinymlError(f"{where}: name '{b.name}' may only use letters, digits, '.', '_' and '-'")
    for key in ("flash_size", "ram_size", "clock_hz", "timer_hz", "baud"):
        if getattr(b, key) <= 0:
            raise TinymlError(f"{where}: {key} must be positive")


def driver_kinds(prefix: str) -> list[str]:
    """The kinds firmware/src has a driver for (for messages): driver_kinds('uart') -> ['cmsdk', ...]."""
    return sorted(p.stem[len(prefix) + 1 :] for p in FIRMWARE_SRC.glob(f"{prefix}_*.c"))


def _check_drivers(b: Board, where: str) -> None:
    """Every driver the board selects has its C file; the error names the board and the missing file."""
    for (key, prefix), src in zip(DRIVER_KEYS, b.driver_sources()):
        value = b.drivers[key]
        if not re.fullmatch(r"[A-Za-z0-9_]+", value) or not src.is_file():
            have = ", ".join(driver_kinds(prefix)) or "none"
            raise TinymlError(
                f"{where}: board '{b.name}' has {key} = '{value}' but there is no driver file {src} "
                f"(write one, or use one of: {have})"
            )
