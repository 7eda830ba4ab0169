"""The wheel: built from the repository, installed outside it, `tinyml bench` runs on a reference model there.

The fresh venv reuses the shared venv's third-party packages (a .pth line; torch and TF are not reinstalled),
but tinyml itself comes only from the wheel: boards, firmware sources and templates must be inside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tinyml.util import REPO_ROOT


def _run(cmd: list, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    r = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out,
              REPO_ROOT], cwd=out)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = out.glob("tinyml-*.whl")
    return whl


def test_the_wheel_carries_boards_firmware_and_templates(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    boards = {p.name for p in (REPO_ROOT / "boards").glob("*.toml")}
    sources = {p.name for p in (REPO_ROOT / "firmware" / "src").iterdir()}
    assert {f"tinyml/boards/{b}" for b in boards} <= names
    assert {f"tinyml/firmware/src/{s}" for s in sources} <= names
    assert {"tinyml/firmware/templates/Makefile.j2", "tinyml/firmware/selftest/tinyml_compile.json",
            "tinyml/compile/templates/model.c.j2", "tinyml/COMMIT"} <= names


@pytest.mark.slow
def test_installed_wheel_benches_a_reference_model_outside_the_repo(wheel, tmp_path, refdata):
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path).returncode == 0
    py = venv / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=tmp_path).stdout.strip())
    (site / "shared-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")  # torch, TF, ... reused
    r = _run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-index", wheel],
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    where = _run([py, "-c", "import tinyml; print(tinyml.__file__)"], cwd=tmp_path).stdout.strip()
    assert where.startswith(str(site)), where  # the wheel's tinyml, not the repository's

    version = _run([venv / "bin" / "tinyml", "--version"], cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("tinyml ")
    assert "commit unknown" not in version.stdout  # recorded in the wheel: no git checkout here

    work = tmp_path / "work"
    work.mkdir()
    r = _run([venv / "bin" / "tinyml", "bench", "--board", "cortex-m", "--model",
              refdata / "models" / "person_detect.tflite", "--random", "1", "--runs", "1", "--warmup", "0",
              "--json", "bench.json"], cwd=work)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "bit-exact" in r.stdout and (work / "bench.json").exists()


def test_version_names_the_commit(capsys):
    from tinyml import __version__, cli
    from tinyml.util import git_commit

    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith(f"tinyml {__version__} (commit {git_commit()}, Python 3.")


def test_setup_refuses_an_unsupported_python_with_a_clear_message():
    script = REPO_ROOT / "scripts" / "check_python.py"
    ok = _run([sys.executable, script], cwd=REPO_ROOT)
    assert ok.returncode == 0 and ok.stderr == ""
    old = _run([sys.executable, script, "3.10"], cwd=REPO_ROOT)
    assert old.returncode == 1
    assert "tinyml needs Python >=3.11,<3.12" in old.stderr and "PYTHON=python3.11 make setup" in old.stderr
    assert "scripts/check_python.py" in (REPO_ROOT / "scripts" / "setup.sh").read_text()
