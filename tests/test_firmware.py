"""`tinyml export` projects: self-contained, incremental, budget-checked, and building for every board."""

from __future__ import annotations

import re
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest
from firmware_cases import board_variant, free_port, small_model  # noqa: F401  (fixture)

from tinyml import cli
from tinyml.device.protocol import Device
from tinyml.device.transport import Link
from tinyml.errors import TinymlError
from tinyml.firmware.boards import board_names, load_board
from tinyml.firmware.project import (
    SELFTEST_MODEL,
    BudgetExceeded,
    build_project,
    estimate_footprint,
    export_project,
    image_footprint,
    read_model_info,
)
from tinyml.util import REPO_ROOT

PROJECT_FILES = {
    "Makefile",
    "link.ld",
    "stack.ld",
    "tinyml_board.h",
    "tinyml_config.h",
    "board.toml",
    "tinyml_export.json",
    "runtime",
    "model",
}


def _make(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", str(project), *args], capture_output=True, text=True, timeout=300)


def test_a_new_uart_is_one_c_file(tmp_path, monkeypatch):
    """No list of drivers anywhere: a uart_<kind>.c beside the others and a board file naming it build and
    run (here a copy of the CMSDK driver under a new name, on QEMU)."""
    from firmware_cases import qemu_device

    from tinyml.firmware import boards, project

    src = tmp_path / "src"
    shutil.copytree(boards.FIRMWARE_SRC, src)
    (src / "uart_mine.c").write_text((src / "uart_cmsdk.c").read_text())
    (src / "uart_cmsdk.c").unlink()
    monkeypatch.setattr(boards, "FIRMWARE_SRC", src)
    monkeypatch.setattr(project, "FIRMWARE_SRC", src)
    board_file = board_variant(tmp_path, "mine")
    board_file.write_text(board_file.read_text().replace('kind = "cmsdk"', 'kind = "mine"'))
    board = load_board(board_file)
    assert board.uart_kind == "mine"
    elf = build_project(export_project(SELFTEST_MODEL, board, tmp_path / "proj")).elf
    assert (tmp_path / "proj" / "runtime" / "uart_mine.c").exists()
    assert not (tmp_path / "proj" / "runtime" / "uart_stm32.c").exists()
    with qemu_device(elf, str(board_file)) as (_, dev):
        assert dev.info()["board"] == "mine"


def test_project_is_self_contained_and_incremental(tmp_path, small_model):  # noqa: F811
    board = load_board("mps2-an500")
    project = export_project(small_model, board, tmp_path / "proj")
    assert {p.name for p in project.dir.iterdir()} == PROJECT_FILES
    assert {p.name for p in (project.dir / "runtime").iterdir()} >= {
        "startup.c",
        "uart_cmsdk.c",
        "timer_systick.c",
        "soc_mps.c",
        "main.c",
        "protocol.c",
    }
    assert not (project.dir / "runtime" / "uart_stm32.c").exists()
    ld = (project.dir / "link.ld").read_text()
    assert "ORIGIN = 0x00000000, LENGTH = 0x00400000" in ld and "ORIGIN = 0x20000000" in ld
    assert "-mcpu=cortex-m7" in (project.dir / "Makefile").read_text()

    # copied anywhere, it builds with make alone, and `make size` agrees with the image's own symbols
    moved = shutil.copytree(project.dir, tmp_path / "elsewhere" / "proj")
    r = _make(moved, "build")
    assert r.returncode == 0, r.stderr
    fp = image_footprint(moved / "build" / "firmware.elf")
    m = re.search(r"flash (\d+) B of (\d+) B .*RAM (\d+) B of (\d+) B", r.stdout)
    assert m and tuple(map(int, m.groups())) == (
        fp.flash_bytes,
        board.flash_size,
        fp.ram_bytes,
        board.ram_size,
    )

    # re-exporting the same model changes no file, so make has nothing to do
    export_project(small_model, board, moved)
    assert _make(moved, "-q", "build/firmware.elf").returncode == 0
    # a different optimization level does reach the build
    export_project(small_model, board, moved, opt="-Os")
    assert _make(moved, "-q", "build/firmware.elf").returncode != 0
    assert _make(moved, "clean").returncode == 0 and not (moved / "build").exists()


def test_export_refuses_a_directory_it_did_not_make(tmp_path, small_model):  # noqa: F811
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(TinymlError, match="is not a `tinyml export` project"):
        export_project(small_model, load_board("cortex-m"), tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# (flash, RAM of the board, --patch, what the refusal must say)
REFUSALS = [
    (4 << 20, 24 << 10, "auto", [r"needs about {ram} B RAM (arena {arena} B, peak at {peak})",
                                 r"board tiny has 24,576 B"]),
    (4 << 20, 32 << 10, "off", [r"needs about {ram} B RAM (arena {arena} B, peak at layer 1 (DEPTHWISE",
                                r"board tiny has 32,768 B"]),
    (128 << 10, 4 << 20, "auto", [r"needs about {flash} B flash, board tiny has 131,072 B"]),
    (128 << 10, 24 << 10, "auto", [r"{ram} B RAM", r"{flash} B flash"]),
]


@pytest.mark.parametrize("flash,ram,patch,messages", REFUSALS)
def test_model_too_big_is_refused_before_building(tmp_path, refdata, flash, ram, patch, messages):
    """The refusal names the bytes needed, the layer (or patch stage) where the arena peaks and the board's
    budget, with the default patches and without."""
    from tinyml.compile import compile_tflite

    model = refdata / "models" / "person_detect.tflite"
    board = load_board(board_variant(tmp_path, "tiny", flash, ram))
    with pytest.raises(BudgetExceeded, match="model person_detect does not fit") as e:
        export_project(model, board, tmp_path / "proj", patch=None if patch == "auto" else patch)
    assert (e.value.board, e.value.ram_size, e.value.flash_size) == ("tiny", ram, flash)
    assert not (tmp_path / "proj").exists()
    c = compile_tflite(model, tmp_path / "compiled", patch_setting=patch)
    info = read_model_info(tmp_path / "compiled")
    est = estimate_footprint(info, board)
    assert e.value.needs == est and est.ram_bytes > c.plan.arena_bytes >= 9216  # the input is in the arena
    for msg in messages:
        assert msg.format(ram=f"{est.ram_bytes:,}", flash=f"{est.flash_bytes:,}",
                          arena=f"{c.plan.arena_bytes:,}", peak=info.peak_layer) in str(e.value)


def test_patches_fit_a_board_that_refuses_the_model_without(tmp_path, refdata):
    """person_detect on a 32 KiB board: --patch off is refused (37,608 B arena), the default (auto) fits."""
    model = refdata / "models" / "person_detect.tflite"
    board = load_board(board_variant(tmp_path, "tiny", None, 32 << 10))
    with pytest.raises(BudgetExceeded, match="board tiny has 32,768 B"):
        export_project(model, board, tmp_path / "off", patch="off")
    m = export_project(model, board, tmp_path / "auto").model
    assert m.patch["bands"] >= 2 and m.arena_bytes == m.patch["arena_bytes"] < 32 << 10


def test_fitting_estimate_is_close_to_the_linked_image(tmp_path, refdata):
    """The pre-build estimate must not under-count (else the link would refuse instead) nor be far off."""
    project = export_project(
        refdata / "models" / "person_detect.tflite", load_board("mps2-an385"), tmp_path / "p"
    )
    est = estimate_footprint(project.model, project.board)
    fp = build_project(project).footprint
    assert fp.ram_bytes <= est.ram_bytes <= fp.ram_bytes * 1.02
    assert fp.flash_bytes <= est.flash_bytes <= fp.flash_bytes * 1.05


def test_link_overflow_is_reported_with_numbers(tmp_path, small_model):  # noqa: F811
    project = export_project(small_model, load_board("cortex-m"), tmp_path / "p")
    ld = project.dir / "link.ld"
    ld.write_text(
        ld.read_text().replace(
            "ORIGIN = 0x20000000, LENGTH = 0x00400000", "ORIGIN = 0x20000000, LENGTH = 0x00000400"
        )
    )
    with pytest.raises(BudgetExceeded, match=r"needs [\d,]+ B RAM, board cortex-m has 1,024 B") as e:
        build_project(project)
    assert e.value.needs.exact and e.value.needs.ram_bytes > 1024 and "flash" not in str(e.value)


@pytest.mark.slow
@pytest.mark.parametrize("board", board_names())
def test_every_board_links_with_its_vector_table_in_place(tmp_path, small_model, board):  # noqa: F811
    """Emulated and real boards alike: the image links, fits, and starts with SP in RAM and reset in flash."""
    b = load_board(board)
    result = build_project(export_project(small_model, b, tmp_path / board, profile=True))
    fp = result.footprint
    assert 0 < fp.flash_bytes <= b.flash_size and 0 < fp.stack_bytes < fp.ram_bytes <= b.ram_size
    assert fp.stack_bytes == result.stack.reserved_bytes  # the link reserved the derived stack
    vectors = b.boot2_bytes  # the RP2040's boot2 comes first, then the vector table
    sp, reset = struct.unpack("<II", result.elf.with_suffix(".bin").read_bytes()[vectors : vectors + 8])
    assert b.ram_base < sp <= b.ram_base + b.ram_size and sp % 8 == 0
    assert b.flash_base <= reset < b.flash_base + fp.flash_bytes and reset & 1  # Thumb
    symbols = subprocess.run(["arm-none-eabi-nm", str(result.elf)], capture_output=True, text=True).stdout
    assert not re.search(r" (malloc|_malloc_r|_sbrk|printf)$", symbols, re.M)  # no heap, no stdio
    header = (result.elf.parent.parent / "tinyml_board.h").read_text()
    assert f'#define TINYML_BOARD_NAME "{board}"' in header
    assert ("#define TINYML_SEMIHOSTING 1" in header) == b.emulated
    if b.armv6m:
        assert not thumb2_only_instructions(result.elf)


# ARMv6-M's only 32-bit instructions; IT, CBZ and CBNZ are 16-bit but Thumb-2 only
V6M_WIDE = {"bl", "mrs", "msr", "dmb", "dsb", "isb"}
THUMB2_NARROW = re.compile(r"(it[te]*|cbn?z)$")


def thumb2_only_instructions(elf: Path) -> list[str]:
    """Disassembled instructions of `elf` a Cortex-M0/M0+ would fault on (kernels, runtime and C library)."""
    text = subprocess.run(
        ["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    bad = []
    for m in re.finditer(r"^\s*[0-9a-f]+:\t([0-9a-f]{4})( [0-9a-f]{4})?\s*\t(\S+)", text, re.M):
        mnemonic = m.group(3).split(".")[0]
        if (m.group(2) and mnemonic not in V6M_WIDE) or THUMB2_NARROW.fullmatch(mnemonic):
            bad.append(m.group(0).strip())
    return bad


def test_thumb2_check_sees_thumb2(tmp_path, small_model):  # noqa: F811
    """The ARMv6-M check above catches a Thumb-2 build: the same model built for the Cortex-M3 fails it."""
    elf = build_project(export_project(small_model, load_board("mps2-an385"), tmp_path / "m3")).elf
    bad = thumb2_only_instructions(elf)
    assert bad and any(re.search(r"\t(it|cbn?z|ldr\.w|str\.w|sdiv)", b) for b in bad)


@pytest.mark.slow
def test_nano33ble_builds_with_its_pins_and_a_bossac_target(tmp_path, small_model):  # noqa: F811
    """Built here, not run (no hardware): nRF pins become PORT/PIN macros, bossac needs a serial port."""
    project = export_project(small_model, load_board("nano33ble"), tmp_path / "nano")
    build_project(project)
    header = (project.dir / "tinyml_board.h").read_text()
    assert "#define TINYML_SOC_UART_TX_PORT 1u" in header and "#define TINYML_SOC_UART_RX_PIN 10u" in header
    runtime = {p.name for p in (project.dir / "runtime").iterdir()}
    assert {"uart_nrf52.c", "soc_nrf52.c", "timer_dwt.c"} <= runtime
    r = _make(project.dir, "flash-bossac")
    assert r.returncode == 2 and "usage: make flash-bossac SERIAL=/dev/ttyACM0" in r.stdout
    assert "flash-bossac" not in (export_project(small_model, load_board("nucleo-f767zi"),
                                                 tmp_path / "f7").dir / "Makefile").read_text()


@pytest.mark.slow
def test_flashing_a_real_board_never_hangs(tmp_path, small_model, monkeypatch):  # noqa: F811
    """`make flash` with a probe that never answers (a pyocd that hangs) stops after TOOL_TIMEOUT with one
    line naming the tool and what to check; a missing pyocd is named with its install command."""
    from tinyml.firmware.project import flash_project

    project = export_project(small_model, load_board("nucleo-f767zi"), tmp_path / "f7")
    build_project(project)
    hang = tmp_path / "pyocd"
    hang.write_text("#!/bin/sh\nsleep 600\n")
    hang.chmod(0o755)
    monkeypatch.setenv("TOOL_TIMEOUT", "1")
    monkeypatch.setenv("PYOCD", str(hang))
    with pytest.raises(TinymlError, match=r"pyocd did not finish within 1 s and was stopped: is the debug"):
        flash_project(project.dir, timeout=60)
    monkeypatch.setenv("PYOCD", str(tmp_path / "missing" / "pyocd"))
    with pytest.raises(TinymlError, match=r"pyocd not found or not runnable .*pip install pyocd"):
        flash_project(project.dir, timeout=60)


def test_firmware_makefile_builds_from_a_tflite(tmp_path, small_model):  # noqa: F811
    project = tmp_path / "fw"
    r = subprocess.run(
        [
            "make",
            "-C",
            str(REPO_ROOT / "firmware"),
            "size",
            f"MODEL={small_model}",
            "BOARD=mps2-an385",
            f"PROJECT={project}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "mps2-an385: flash" in r.stdout and (project / "build" / "firmware.elf").exists()
    assert "-mcpu=cortex-m3" in (project / "Makefile").read_text()
    r = subprocess.run(["make", "-C", str(REPO_ROOT / "firmware"), "build"], capture_output=True, text=True)
    assert r.returncode != 0 and "usage: make build MODEL=path/to/model.tflite" in r.stdout


def test_make_flash_serves_until_make_stop(tmp_path, small_model):  # noqa: F811
    project = export_project(small_model, load_board("cortex-m"), tmp_path / "p")
    assert _make(project.dir, "build").returncode == 0
    port = free_port()
    proc = subprocess.Popen(
        ["make", "-C", str(project.dir), "flash", f"PORT={port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        for _ in range(2):  # QEMU keeps serving after a client leaves
            with Link(f"socket://127.0.0.1:{port}", connect_timeout=10) as link:
                dev = Device(link)
                dev.hello()
                assert dev.info()["model"] == "mini_mobilenet"
        stop = _make(project.dir, "stop")
        assert "QEMU stopped" in stop.stdout
        out, _ = proc.communicate(timeout=10)
        assert f"serial port on TCP 127.0.0.1:{port}" in out
        assert f"tinyml bench --port socket://127.0.0.1:{port}" in out
        assert not (project.dir / "build" / "qemu.pid").exists()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(5)


def test_export_cli(tmp_path, small_model, capsys):  # noqa: F811
    out = tmp_path / "l4"
    assert cli.main(["export", str(small_model), "--board", "nucleo-l4r5zi", "-o", str(out), "--build"]) == 0
    text = capsys.readouterr().out
    fp = image_footprint(out / "build" / "firmware.elf")
    assert (
        f"flash {fp.flash_bytes:,} B of 2,097,152 B" in text
        and f"RAM {fp.ram_bytes:,} B of 655,360 B" in text
    )
    assert "pyocd (target stm32l4r5zitx)" in text
    info = read_model_info(out / "model")
    assert info.name == "mini_mobilenet" and len(info.sha256) == 64
    assert f'TINYML_MODEL_SHA256 "{info.sha256}"' in (out / "tinyml_config.h").read_text()
    mk = (out / "Makefile").read_text()
    assert "pack install stm32l4r5zitx" in mk and "$(QEMU)" not in mk


def test_export_cli_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path / "missing.tflite"), "-o", str(tmp_path / "x")]) == 1
    assert (
        capsys.readouterr().err.strip()
        == f"tinyml export: error: {tmp_path / 'missing.tflite'}: no such file"
    )
    t0 = time.monotonic()
    assert cli.main(["export", str(tmp_path), "--board", "nope", "-o", str(tmp_path / "x")]) == 2
    assert "unknown board 'nope'" in capsys.readouterr().err and time.monotonic() - t0 < 5


def test_plain_c_fallback_on_a_dsp_core_is_named(tmp_path, refdata, capsys):
    """A 5x5 depthwise with depth multiplier 2 has no SIMD kernel: on a DSP board the export says so."""
    from compile_cases import CASES, convert

    dw = convert(next(c for c in CASES if c.name == "dw5x5_valid_dm2"), tmp_path)
    said = {}
    for model, board in ((dw, "cortex-m"), (dw, "mps2-an385"), (refdata / "models" / "person_detect.tflite",
                                                               "cortex-m")):
        out = tmp_path / f"{model.stem}-{board}"
        assert cli.main(["export", str(model), "--board", board, "-o", str(out)]) == 0
        err = capsys.readouterr().err
        said[model.stem, board] = [ln for ln in err.splitlines() if ln.startswith("warning")]
    (line,) = said["dw5x5_valid_dm2", "cortex-m"]
    assert "layer 0 (DEPTHWISE_CONV_2D" in line
    assert "plain-C kernel depthwise_conv2d_s8 on cortex-m's DSP core" in line
    assert said["dw5x5_valid_dm2", "mps2-an385"] == []  # no DSP extension: plain C is the only kernel there
    assert said["person_detect", "cortex-m"] == []  # every layer on a SIMD kernel


# ---- Raspberry Pi Pico: boot2 CRC and UF2, as the RP2040 bootrom reads them (no board here) ----


def test_boot2_crc_is_crc32_mpeg2():
    from tinyml.firmware import uf2

    assert uf2.crc32_mpeg2(b"123456789") == 0x0376E6E7  # the catalogued check value of CRC-32/MPEG-2
    boot2 = uf2.boot2_with_crc(bytes(range(252)) + bytes(4))
    uf2.check_boot2(boot2)
    with pytest.raises(uf2.Uf2Error, match="boot2 CRC .* the bootrom computes"):
        uf2.check_boot2(b"\x01" + boot2[1:])


def _no_flash_tools_env() -> dict[str, str]:
    """The environment without picotool or pyocd on PATH (the venv's pyocd included), so `make flash` can only
    look for the drive."""
    import os

    keep = [d for d in os.environ["PATH"].split(os.pathsep)
            if not any((Path(d) / t).exists() for t in ("picotool", "pyocd"))]
    return {**os.environ, "PATH": os.pathsep.join(keep)}


@pytest.mark.slow
def test_pico_build_writes_a_valid_uf2_and_make_flash_copies_it(tmp_path, small_model, capsys):  # noqa: F811
    import sys

    from tinyml.firmware import uf2

    out = tmp_path / "pico"
    assert cli.main(["export", str(small_model), "--board", "pico", "-o", str(out), "--build"]) == 0
    assert "firmware.uf2 to the board's USB drive" in capsys.readouterr().out
    b = load_board("pico")
    elf = out / "build" / "firmware.elf"
    data = elf.with_suffix(".uf2").read_bytes()
    image = uf2.read_uf2(data, b.flash_base, b.uf2_family)  # magics, family, numbering, contiguous addresses
    uf2.check_boot2(image)
    binary = elf.with_suffix(".bin").read_bytes()
    assert image[: len(binary)] == binary and len(image) % 4096 == 0 and len(data) == len(image) * 2
    sp, reset = struct.unpack_from("<II", image, 256)  # boot2 loads these from 0x10000100
    assert b.ram_base < sp <= b.ram_base + b.ram_size
    assert b.flash_base + 256 < reset < b.flash_base + len(binary)
    assert not thumb2_only_instructions(elf)
    with pytest.raises(uf2.Uf2Error, match="UF2 block 0: family 0xe48bff56, expected 0xe48bff57"):
        uf2.read_uf2(data, b.flash_base, b.uf2_family + 1)
    with pytest.raises(uf2.Uf2Error, match="UF2 block 3: .*address"):
        uf2.read_uf2(data[:3 * 512] + data[4 * 512 :] + data[3 * 512 : 4 * 512], b.flash_base, b.uf2_family)

    # make flash: onto the mounted RPI-RP2 drive; without one (and no picotool/pyocd), a clear error in time
    drive = tmp_path / "media" / "RPI-RP2"
    drive.mkdir(parents=True)
    (drive / "INFO_UF2.TXT").write_text("UF2 Bootloader v3.0\nBoard-ID: RPI-RP2\n")
    env = {**_no_flash_tools_env(), "RPI_RP2_DRIVE": str(drive)}
    make = ["make", "-C", str(out), "flash", f"PYTHON={sys.executable}", "FLASH_TIMEOUT=1", "PYOCD=no-pyocd"]
    r = subprocess.run(make, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (drive / "firmware.uf2").read_bytes() == data and "copied" in r.stdout
    env["RPI_RP2_DRIVE"] = str(tmp_path / "nowhere")
    t0 = time.monotonic()
    r = subprocess.run(make, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode != 0 and "no RPI-RP2 drive appeared within 1 s" in r.stderr
    assert "hold BOOTSEL" in r.stderr and time.monotonic() - t0 < 30
