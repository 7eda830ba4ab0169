"""`tinyml doctor`: all green on a set-up machine (self-test included), a named fix when a tool is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tinyml import cli

CHECKS = ("python", "python packages", "arm-none-eabi-gcc", "make", "qemu-system-arm", "boards", "pyocd",
          "bossac")


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


def _fake_tool(bin_dir: Path, name: str, script: str) -> Path:
    bin_dir.mkdir(exist_ok=True)
    p = bin_dir / name
    p.write_text("#!/bin/sh\n" + script + "\n")
    p.chmod(0o755)
    return p


def test_doctor_runs_the_flash_tool_it_reports(tmp_path, monkeypatch, capsys):
    """pyocd is reported from having run it: a pyocd that hangs is a FAIL naming it, not an 'ok' or a hang."""
    from tinyml import doctor

    fake = _fake_tool(tmp_path / "bin", "pyocd", "sleep 600")
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(doctor, "TOOL_CHECK_TIMEOUT", 1.0)
    r = doctor.check_pyocd()
    assert (r.status, r.name) == ("FAIL", "pyocd") and str(fake) in r.detail and "failed or hung" in r.detail


def test_tools_are_found_on_path_else_in_the_venv(tmp_path, monkeypatch):
    """pyocd only in the venv's bin/ was 'ok' in doctor while `make flash` looked on PATH alone."""
    import sys

    from tinyml.tools import find_tool, tool_for_makefile

    venv_bin = Path(sys.executable).parent
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    if (venv_bin / "pyocd").exists():
        assert find_tool("pyocd") == tool_for_makefile("pyocd") == str(venv_bin / "pyocd")
    on_path = _fake_tool(tmp_path, "pyocd", "exit 0")
    assert find_tool("pyocd") == str(on_path) and tool_for_makefile("pyocd") == "pyocd"
    assert find_tool("no-such-tool-here") is None
