"""`tinyml doctor`: is this machine ready? Toolchain, QEMU, Python packages, boards, and a firmware self-test.

Each check prints ok / warn / FAIL and, when something is wrong, the command that fixes it.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tinyml.util import REPO_ROOT

APT = "sudo apt-get install -y"
TOOL_CHECK_TIMEOUT = 30.0  # s for a tool's --version: a hanging tool is a finding, not a hanging doctor
TOOLCHAIN_FIX = f"{APT} gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi make"


@dataclass(frozen=True)
class Check:
    status: str  # "ok" | "warn" | "FAIL"
    name: str
    detail: str
    fix: str = ""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="skip the firmware self-test (build + boot in QEMU)")


def run(args: argparse.Namespace) -> int:
    checks: list[Callable[[], Check]] = [
        check_python,
        check_packages,
        check_toolchain,
        check_make,
        check_qemu,
        check_boards,
        check_pyocd,
        check_bossac,
    ]
    if not args.quick:
        checks.append(check_selftest)
    results = []
    for fn in checks:
        try:
            r = fn()
        except Exception as e:  # a check that breaks is itself a finding, not a crash of the doctor
            r = Check("FAIL", fn.__name__.removeprefix("check_"), f"the check itself failed: {e}")
        results.append(r)
        print(f"  {r.status:<5} {r.name}: {r.detail}")
        if r.fix:
            print(f"        fix: {r.fix}")
    failed = [r for r in results if r.status == "FAIL"]
    warned = [r for r in results if r.status == "warn"]
    if failed:
        print(f"{len(failed)} problem(s): run the fix commands above, then `tinyml doctor` again")
        return 1
    print("all good" + (f" ({len(warned)} warning(s))" if warned else ""))
    return 0


def _run(cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def check_python() -> Check:
    v = sys.version_info
    detail = f"{v.major}.{v.minor}.{v.micro} ({sys.executable})"
    if (v.major, v.minor) != (3, 11):
        return Check(
            "warn",
            "python",
            detail + ": the pinned packages are tested with Python 3.11",
            "PYTHON=python3.11 make setup",
        )
    return Check("ok", "python", detail)


def _pins() -> dict[str, str]:
    req = REPO_ROOT / "requirements.txt"
    pins = {}
    for line in req.read_text().splitlines() if req.exists() else []:
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s#;]+)", line)
        if m:
            pins[m.group(1)] = m.group(2)
    return pins


def check_packages() -> Check:
    from importlib import metadata

    pins = _pins()
    missing, other = [], []
    for name, want in pins.items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        if have != want and not have.startswith(want + "+"):
            other.append(f"{name} {have} (pinned {want})")
    fix = f"{sys.executable} -m pip install -r {REPO_ROOT / 'requirements.txt'}   (or `make setup`)"
    if missing:
        return Check("FAIL", "python packages", f"missing: {', '.join(missing)}", fix)
    if other:
        return Check("warn", "python packages", f"not at their pins: {', '.join(other)}", fix)
    return Check("ok", "python packages", f"{len(pins)} pinned packages installed at their pins")


def check_toolchain() -> Check:
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        return Check("FAIL", "arm-none-eabi-gcc", "not found on PATH", TOOLCHAIN_FIX)
    version = _run([gcc, "-dumpfullversion"]).stdout.strip()
    missing = [t for t in ("arm-none-eabi-nm", "arm-none-eabi-objcopy") if shutil.which(t) is None]
    if missing:
        return Check(
            "FAIL", "arm-none-eabi-gcc", f"{version}, but {', '.join(missing)} missing", TOOLCHAIN_FIX
        )
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "t.c"
        src.write_text("#include <string.h>\nint main(void) { char b[8]; memset(b, 1, 8); return b[3]; }\n")
        r = _run(
            [
                gcc,
                "-mcpu=cortex-m4",
                "-mthumb",
                "-mfloat-abi=hard",
                "-mfpu=fpv4-sp-d16",
                "-O2",
                "--specs=nano.specs",
                "--specs=nosys.specs",
                str(src),
                "-o",
                str(Path(tmp) / "t.elf"),
            ]
        )
    if r.returncode != 0:
        return Check(
            "FAIL",
            "arm-none-eabi-gcc",
            f"{version} cannot link with newlib-nano: "
            f"{r.stderr.strip().splitlines()[-1] if r.stderr.strip() else 'unknown error'}",
            f"{APT} libnewlib-arm-none-eabi",
        )
    return Check("ok", "arm-none-eabi-gcc", f"{version}, links Cortex-M4F code against newlib-nano")


def check_make() -> Check:
    if shutil.which("make") is None:
        return Check("FAIL", "make", "not found (exported projects build with make)", f"{APT} make")
    return Check("ok", "make", _run(["make", "--version"]).stdout.splitlines()[0])


def _emulated_machines() -> dict[str, str]:
    from tinyml.firmware.boards import board_names, load_board

    out = {}
    for n in board_names():
        try:
            b = load_board(n)
        except Exception:  # reported by check_boards
            continue
        if b.emulated:
            out[n] = b.qemu_machine
    return out


def check_qemu() -> Check:
    from tinyml.tools import find_tool

    qemu = find_tool("qemu-system-arm")
    if qemu is None:
        return Check(
            "FAIL", "qemu-system-arm", "not found: emulated boards cannot run", f"{APT} qemu-system-arm"
        )
    version = _run([qemu, "--version"]).stdout.splitlines()[0].replace("QEMU emulator version ", "")
    machines = set(re.findall(r"^(\S+)\s", _run([qemu, "-machine", "help"]).stdout, re.M))
    need = _emulated_machines()
    lacking = [f"{board} ({m})" for board, m in need.items() if m not in machines]
    if lacking:
        return Check(
            "FAIL",
            "qemu-system-arm",
            f"{version} lacks machines for {', '.join(lacking)}",
            f"{APT} qemu-system-arm  (QEMU >= 7.0 has them all)",
        )
    return Check("ok", "qemu-system-arm", f"{version}, machines {', '.join(sorted(set(need.values())))}")


def check_boards() -> Check:
    from tinyml.errors import TinymlError
    from tinyml.firmware.boards import BOARDS_DIR, board_names, load_board

    names, bad = board_names(), []
    for n in names:
        try:
            load_board(n)
        except TinymlError as e:
            bad.append(str(e))
    if not names:
        return Check("FAIL", "boards", f"no board files in {BOARDS_DIR}")
    if bad:
        return Check("FAIL", "boards", "; ".join(bad), "fix the board file named above")
    return Check("ok", "boards", f"{len(names)} in {BOARDS_DIR}: {', '.join(names)}")


def _tool_version(exe: str, *args: str) -> str | None:
    """The tool's first output line when it runs in time, else None: what doctor reports, it has run."""
    try:
        r = _run([exe, *args], timeout=TOOL_CHECK_TIMEOUT)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (r.stdout + r.stderr).strip().splitlines()
    return lines[0].strip() if r.returncode == 0 and lines else None


def check_pyocd() -> Check:
    from tinyml.firmware.boards import board_names, load_board
    from tinyml.tools import TOOLS, find_tool

    real = [load_board(n) for n in board_names()]
    packs = [f"{b.name}: pyocd pack install {b.pyocd_pack}" for b in real if not b.emulated and b.pyocd_pack]
    exe = find_tool("pyocd")
    if exe is None:
        return Check("warn", "pyocd", "not installed: needed only to flash real boards",
                     TOOLS["pyocd"].install)
    version = _tool_version(exe, "--version")
    if version is None:
        return Check("FAIL", "pyocd", f"{exe} does not run (`pyocd --version` failed or hung)",
                     TOOLS["pyocd"].install)
    note = ("; real boards needing a CMSIS pack once (downloads): " + ", ".join(packs)) if packs else ""
    return Check("ok", "pyocd", f"{version} at {exe}, ran `pyocd --version` (flashes real boards){note}")


def check_bossac() -> Check:
    from tinyml.firmware.boards import board_names, load_board
    from tinyml.tools import TOOLS, find_tool

    users = [b.name for b in (load_board(n) for n in board_names()) if b.bossac]
    exe = find_tool("bossac")
    if exe is None:
        return Check("warn", "bossac", f"not installed: needed only for `make flash-bossac` "
                     f"({', '.join(users) or 'no board'}) without a debug probe", TOOLS["bossac"].install)
    version = _tool_version(exe, "--help")
    if version is None:
        return Check("FAIL", "bossac", f"{exe} does not run (`bossac --help` failed or hung)",
                     TOOLS["bossac"].install)
    return Check("ok", "bossac", f"{version} at {exe} (flashes {', '.join(users)} through its bootloader)")


def check_selftest() -> Check:
    """Build the self-test firmware for the default board, boot it in QEMU, and run it over serial."""
    import numpy as np

    from tinyml.device.protocol import Device
    from tinyml.device.transport import Link, QemuBoard
    from tinyml.firmware.boards import DEFAULT_BOARD, load_board
    from tinyml.firmware.project import SELFTEST_MODEL, build_project, export_project, selftest_expected

    t0 = time.monotonic()
    board = load_board(DEFAULT_BOARD)
    with tempfile.TemporaryDirectory(prefix="tinyml-doctor-") as tmp:
        project = export_project(SELFTEST_MODEL, board, Path(tmp) / "selftest")
        elf = build_project(project).elf
        x = np.arange(-8, 8, dtype=np.int8) * 9
        with QemuBoard(board, elf) as q, Link(q.url) as link:
            dev = Device(link, timeout=5.0)
            dev.hello()
            dev.set_input(x.tobytes())
            counts = dev.invoke(2)
            out = dev.get_output(4)
            dev.exit()
    if out != selftest_expected(x).tobytes():
        return Check(
            "FAIL",
            "self-test",
            f"the firmware answered {out.hex()}, expected "
            f"{selftest_expected(x).tobytes().hex()}: the serial path corrupts data",
        )
    return Check(
        "ok",
        "self-test",
        f"firmware built, booted on {board.name} (QEMU {board.qemu_machine}) and "
        f"answered over serial in {time.monotonic() - t0:.1f} s ({counts[0]} instructions per run)",
    )
