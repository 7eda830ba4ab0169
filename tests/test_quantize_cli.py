"""Bad input to `tinyml quantize`: one line on stderr naming the problem, exit code 2, no output files."""

from __future__ import annotations

import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from tinyml.cli import main
from tinyml.models import ModelConfig, build_model, save_checkpoint

REPO = Path(__file__).resolve().parent.parent

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("q_cli") / "good.pt"
    cfg = ModelConfig(resolution=32)
    save_checkpoint(path, build_model(cfg), cfg, train={"data": "synthetic:40", "val_fraction": 0.1})
    return path


@pytest.fixture
def torch_style_head():
    """A user-registered head written the PyTorch way (3x3 stride 2, padding=1). TF "same" pads bottom/right
    only, so converting it would need a PAD op: the mirror must refuse and name the module."""
    from tinyml.models.heads import HEADS, register_head

    @register_head("torch_style")
    def torch_style(in_channels: int, classes: int) -> nn.Sequential:
        return nn.Sequential(OrderedDict(
            conv=nn.Conv2d(in_channels, 8, 3, stride=2, padding=1), relu=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(8, classes)))

    yield "torch_style"
    HEADS.pop("torch_style")


def _not_ours(tmp: Path) -> Path:
    torch.save({"conv.weight": torch.zeros(1)}, tmp / "plain_state_dict.pt")
    return tmp / "plain_state_dict.pt"


def _garbage(tmp: Path) -> Path:
    (tmp / "garbage.pt").write_bytes(b"\x00not a checkpoint" * 10)
    return tmp / "garbage.pt"


def _unconvertible(tmp: Path) -> Path:
    cfg = ModelConfig(resolution=32, cut=1, head="torch_style")
    return save_checkpoint(tmp / "torch_style.pt", build_model(cfg), cfg,
                           train={"data": "synthetic:40", "val_fraction": 0.1})


# name -> (checkpoint maker (None: a good one), output file, extra args, words the error line must contain,
#          exit code: 1 runtime failure, 2 usage error)
CASES = {
    "missing_checkpoint": (lambda tmp: tmp / "nope.pt", "m.tflite", [], ["nope.pt", "not found"], 1),
    "plain_torch_state_dict": (_not_ours, "m.tflite", [], ["plain_state_dict.pt", "not a tinyml checkpoint"],
                               1),
    "garbage_file": (_garbage, "m.tflite", [], ["garbage.pt", "not a tinyml checkpoint"], 1),
    "empty_calibration_set": (None, "m.tflite", ["--calibration-samples", "0"], ["calibration set is empty"],
                              2),
    "output_not_tflite": (None, "m.bin", [], ["m.bin", "must end in .tflite"], 2),
    "unknown_data": (None, "m.tflite", ["--data", "imagenet"], ["unknown data source"], 2),
    "unconvertible_layer": (_unconvertible, "m.tflite", [], ["layer head.conv", "PAD op"], 1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_its_exit_code(case, tmp_path, good_checkpoint, torch_style_head, capsys):
    make, out_name, extra, words, exit_code = CASES[case]
    ckpt = make(tmp_path) if make else good_checkpoint
    out = tmp_path / out_name
    code = main(["quantize", "--model", str(ckpt), "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err
    assert code == exit_code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tinyml quantize: error: ")
    for w in words:
        assert w in lines[0]
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_bad_checkpoint_from_the_shell(tmp_path):
    """The same through a real process: exit status 1 (runtime failure) and one stderr line, no traceback."""
    out = tmp_path / "m.tflite"
    proc = subprocess.run([sys.executable, "-m", "tinyml", "quantize", "--model", str(_garbage(tmp_path)),
                           "--out", str(out)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    prefix = f"tinyml quantize: error: {tmp_path / 'garbage.pt'} is not a tinyml checkpoint"
    assert lines[0].startswith(prefix)
    assert not out.exists()
