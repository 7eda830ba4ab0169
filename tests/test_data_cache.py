"""The memory-mapped dataset cache: parallel build, resume after a real kill, checksums, shared builds."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinyml.data import cache as cache_mod
from tinyml.data import load_splits
from tinyml.data.folder import list_folder
from tinyml.data.images import decode_image
from tinyml.data.view import ImageView

RES, CH, CHUNK, N = 24, 3, 8, 60
REPO = Path(__file__).resolve().parent.parent


def make_folder(root: Path, n: int = N, seed: int = 0) -> Path:
    """n noisy JPEGs/PNGs of varied sizes in person/ and non_person/, plus one unreadable file."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        d = root / ("person" if i % 2 else "non_person")
        d.mkdir(parents=True, exist_ok=True)
        w, h = int(rng.integers(30, 80)), int(rng.integers(30, 80))
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        img.save(d / f"img{i:03d}.{'jpg' if i % 3 else 'png'}")
    (root / "person" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return root


def items(root: Path) -> tuple[list[Path], np.ndarray]:
    listed = list_folder(root)
    return [p for p, _ in listed], np.array([lab for _, lab in listed], np.int64)


def open_it(d: Path, root: Path, **kw):
    return cache_mod.open_cached(d, {"test": str(root)}, lambda: items(root), RES, CH, "test", progress=False,
                                 **kw)


def direct(root: Path) -> np.ndarray:
    """The images decoded one by one, without the cache (blank rows where a file does not decode)."""
    out = []
    for p in items(root)[0]:
        a = decode_image(p, RES, CH)
        out.append(np.zeros((RES, RES, CH), np.uint8) if a is None else a)
    return np.stack(out)


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(cache_mod, "CHUNK", CHUNK)


def test_parallel_build_matches_direct_decoding(tmp_path, small_chunks):
    root = make_folder(tmp_path / "ds")
    c = open_it(tmp_path / "c", root, workers=2)
    paths, labels = items(root)
    assert c.decoded == len(paths) == N + 1 and c.skipped == 1 and "broken.jpg" in c.first_skipped
    assert isinstance(c.x, np.memmap) and c.x.shape == (N + 1, RES, RES, CH) and not c.x.flags.writeable
    np.testing.assert_array_equal(np.asarray(c.x), direct(root))
    np.testing.assert_array_equal(c.y, labels)
    assert c.ok.sum() == N and not c.ok[[p.name for p in paths].index("broken.jpg")]
    again = open_it(tmp_path / "c", root)
    assert again.decoded == 0  # complete and intact: nothing decoded


def test_resume_after_a_kill_decodes_only_the_rest(tmp_path, small_chunks):
    root = make_folder(tmp_path / "ds")
    d = tmp_path / "c"
    # A real build in another process, SIGKILLed (with its pool) right after its third chunk is recorded.
    script = f"""
import os, signal, sys
from pathlib import Path
sys.path.insert(0, {str(REPO / 'tests')!r})
from test_data_cache import open_it
import tinyml.data.cache as c
c.CHUNK = {CHUNK}
def die(done):
    if done == 3:
        os.killpg(0, signal.SIGKILL)
open_it(Path({str(d)!r}), Path({str(root)!r}), workers=1, on_chunk=die)
"""
    proc = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)},
                          start_new_session=True, timeout=120, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    m = cache_mod._read_manifest(d)
    assert m is not None and not m["complete"] and len(m["chunks"]) == 3
    c = open_it(d, root)
    assert c.decoded == N + 1 - 3 * CHUNK  # only the chunks the killed build had not finished
    np.testing.assert_array_equal(np.asarray(c.x), direct(root))


def test_checksum_mismatch_is_detected_and_repaired(tmp_path, small_chunks, capsys):
    root = make_folder(tmp_path / "ds")
    d = tmp_path / "c"
    open_it(d, root)
    row = RES * RES * CH
    with open(d / "images.u8", "r+b") as f:  # flip one byte of image 20 (chunk 16..23)
        f.seek(20 * row + 5)
        b = f.read(1)
        f.seek(20 * row + 5)
        f.write(bytes([b[0] ^ 0xFF]))
    c = open_it(d, root)
    err = capsys.readouterr().err
    assert "1 chunk(s) fail their SHA-256 checksum (first: images 16..23)" in err
    assert c.decoded == CHUNK
    np.testing.assert_array_equal(np.asarray(c.x), direct(root))


def _open_in_child(args: tuple[str, str]) -> int:
    d, root = args
    cache_mod.CHUNK = CHUNK
    return open_it(Path(d), Path(root), workers=1).decoded


def test_parallel_jobs_share_one_build(tmp_path):
    """Two processes ask for the same cache at once: the file lock makes one build it, the other reuse it."""
    root = make_folder(tmp_path / "ds")
    with mp.get_context("spawn").Pool(2) as pool:
        decoded = pool.map(_open_in_child, [(str(tmp_path / "c"), str(root))] * 2)
    assert sorted(decoded) == [0, N + 1]


def test_splits_are_views_of_the_memory_map(tmp_path):
    """load_splits keeps the rows on disk: train/val are views whose batches equal direct decoding."""
    root = make_folder(tmp_path / "ds")
    s = load_splits(f"folder:{root}", resolution=RES, channels=CH, cache_dir=tmp_path / "c", progress=False)
    assert isinstance(s.train_x, ImageView) and isinstance(s.train_x.base, np.memmap)
    assert len(s.train_x) + len(s.val_x) == N and s.skipped == 1
    ref = direct(root)
    idx = np.array([5, 0, 3])
    np.testing.assert_array_equal(s.train_x[idx], ref[s.train_x.index[idx]])
    np.testing.assert_array_equal(np.asarray(s.val_x), ref[s.val_x.index])
