"""`tinyml doctor`: all green on a set-up machine (self-test included), a named fix when a tool is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tinyml import cli

CHECKS = ("python", "python packages", "arm-none-eabi-gcc", "make", "qemu-system-arm", "boards", "pyocd")


def test_doctor_passes_here_including_the_firmware_self_test(capsys):
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    for name in CHECKS:
        assert f"ok    {name}:" in out or f"warn  {name}:" in out, name
    assert "ok    self-test: firmware built, booted on cortex-m (QEMU mps2-an386) and answered" in out
    assert "FAIL" not in out and out.rstrip().splitlines()[-1].startswith("all good")


def test_doctor_names_the_fix_for_a_missing_tool(tmp_path, monkeypatch, capsys):
    # a PATH with everything but QEMU
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-nm", "arm-none-eabi-objcopy", "make", "pyocd"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(Path(found).resolve())
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + "/usr/lib/gcc-cross-none")
    assert cli.main(["doctor", "--quick"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  qemu-system-arm: not found: emulated boards cannot run" in out
    assert "fix: sudo apt-get install -y qemu-system-arm" in out
    assert "ok    arm-none-eabi-gcc:" in out and "self-test" not in out
    assert "1 problem(s)" in out
