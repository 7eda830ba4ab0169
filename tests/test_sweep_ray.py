"""`tinyml sweep --executor ray` on a real Ray cluster on this machine: a head node and a second node, each
with one CPU, started with `ray start` (tests/ray_cases.py). The same small sweep (the tiny base and cut point
3, 1 epoch, one torch thread per point) run locally and on the cluster must give the same results point by
point; losing the second node mid-sweep (SIGKILL of all its processes) must not change them; Ctrl-C must leave
the sweep resumable. Every Ray process a test starts is killed at the end (by process session, not by name).
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from prune_cases import SWEEP_CMD, THREADS
from ray_cases import RAY_ENV, LocalCluster

from tinyml.cli import main

TASK_TITLE = "ray::tinyml_sweep_point"
POINTS = ["base", "depth-c03-dscnn32_16-frozen"]
SWEEP = ["--cuts", "3", "--epochs", "1", "--quiet", *THREADS]
DEVICE = ["--bench-runs", "1", "--bench-inputs", "1"]
# Fields that differ from run to run on any executor: durations, and the deepest stack the board saw (the
# painted stack includes UART interrupts, whose moment depends on the host's load; instruction counts do not).
TIMINGS = {"train_s", "stage_seconds", "stack_peak_bytes"}
# bench.json: what was run and measured (not its wall time, timestamp or stack peak).
BENCH_SAME = ("model_sha256", "unit", "runs", "outputs", "inputs", "bit_exact", "flash_bytes", "ram_bytes",
              "arena_bytes", "per_layer", "cflags")


@pytest.fixture(scope="module")
def local_sweep(tiny_base, tmp_path_factory) -> Path:
    """The reference: the device sweep run by the local executor."""
    out = tmp_path_factory.mktemp("local") / "sweep"
    assert main(["sweep", "--base", str(tiny_base), "--out", str(out), *SWEEP, *DEVICE]) == 0
    return out


@pytest.fixture
def cluster():
    """A head with 1 CPU and a second node with 1 CPU; every process of both is killed afterwards."""
    c = LocalCluster()
    try:
        c.start_head(num_cpus=1)
        c.add_node(num_cpus=1)
        yield c
    finally:
        nodes = list(c.nodes)
        c.stop()
        deadline = time.time() + 10
        while any(n.pids() for n in nodes) and time.time() < deadline:
            time.sleep(0.2)
        assert not [p for n in nodes for p in n.pids()], "a Ray process outlived the test"


class RaySweep:
    """`tinyml sweep --executor ray` in its own process; its output read as it comes (to act on it)."""

    def __init__(self, base: Path, out: Path, cluster: LocalCluster, *extra: str) -> None:
        argv = [*SWEEP_CMD, "--base", str(base), "--out", str(out), "--executor", "ray", "--ray-address",
                cluster.address, *SWEEP, *extra]
        self.proc = subprocess.Popen(argv, env={**RAY_ENV, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.readers = [threading.Thread(target=self._read, args=(name,), daemon=True)
                        for name in self.lines]
        for t in self.readers:
            t.start()

    def _read(self, name: str) -> None:
        for line in getattr(self.proc, name):
            self.lines[name].append(line)

    def wait_for(self, text: str, timeout: float = 180) -> None:
        deadline = time.time() + timeout
        while not any(text in line for line in self.lines["stdout"]):
            assert self.proc.poll() is None, "".join(self.lines["stderr"])[-3000:]
            assert time.time() < deadline, f"no {text!r} in {''.join(self.lines['stdout'])}"
            time.sleep(0.05)

    def finish(self, timeout: float = 300) -> tuple[str, str]:
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for t in self.readers:
                t.join(10)
        return "".join(self.lines["stdout"]), "".join(self.lines["stderr"])


def _rows(out: Path) -> dict[str, dict]:
    return {r["id"]: r for r in json.loads((out / "results.json").read_text())["points"]}


def _portable(value, out: Path, base: Path):
    """A record's value with its sweep dir and base path spelled the same for every run."""
    if isinstance(value, str):
        return value.replace(str(out), "SWEEP_DIR").replace(str(base), "BASE")
    if isinstance(value, dict):
        return {k: _portable(v, out, base) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v, out, base) for v in value]
    return value


def assert_same_results(ref: Path, got: Path, base: Path, stages: int = 5) -> None:
    """Every point's record equals the reference's (timings aside), its files hold the same model bits."""
    import torch

    want, have = _rows(ref), _rows(got)
    assert sorted(have) == sorted(POINTS)
    for pid, rec in have.items():
        assert not rec.get("error"), (pid, rec.get("error"))
        assert len(rec["stages_done"]) == stages
        mine = {k: v for k, v in rec.items() if k not in TIMINGS | {"stages_done"}}
        theirs = {k: v for k, v in want[pid].items() if k not in TIMINGS | {"stages_done"}}
        if stages < 5:  # a host-only sweep against the device reference: its host columns
            assert set(mine) <= set(theirs), set(mine) - set(theirs)
            theirs = {k: theirs[k] for k in mine}
        assert _portable(mine, got, base) == _portable(theirs, ref, base), pid
        if pid != "base":  # the trained weights, bit for bit
            a = torch.load(ref / "points" / pid / "best.pt", weights_only=False)["state_dict"]
            b = torch.load(got / "points" / pid / "best.pt", weights_only=False)["state_dict"]
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), pid
        if stages == 5:
            assert rec["bit_exact"] is True and rec["latency_unit"] == "instructions"
            for name in ("model.tflite", "fw/build/firmware.bin"):  # the ELF's debug info names its dir
                if (ref / "points" / pid / name).exists():
                    assert (got / "points" / pid / name).read_bytes() == \
                        (ref / "points" / pid / name).read_bytes(), (pid, name)
            bench = [json.loads((d / "points" / pid / "bench.json").read_text()) for d in (ref, got)]
            for key in BENCH_SAME:
                assert bench[1][key] == bench[0][key], (pid, key)


@pytest.mark.slow
def test_ray_sweep_on_two_nodes_equals_local(tiny_base, local_sweep, cluster, tmp_path):
    out = tmp_path / "sweep"
    stdout, stderr = RaySweep(tiny_base, out, cluster, *DEVICE).finish()
    assert "Traceback" not in stderr, stderr
    assert f"Ray cluster {cluster.address}, 1 CPU(s) per point" in stdout
    nodes = {line.split(": on ")[1].split("/")[0] for line in stdout.splitlines() if ": on 127.0.0." in line}
    assert nodes == {"127.0.0.2", "127.0.0.3"}, stdout  # both nodes ran points
    assert_same_results(local_sweep, out, tiny_base)
    # relative layout only: no record or text file names the workers' temp dirs
    for p in out.rglob("*"):
        if p.is_file() and p.suffix in (".json", ".txt", ".md", ".csv"):
            assert "tinyml-sweep-" not in p.read_text(), p

    # a rerun on the cluster skips every point and rewrites nothing
    before = {p: p.stat().st_mtime_ns for p in (out / "points").rglob("*") if p.is_file()}
    stdout, _ = RaySweep(tiny_base, out, cluster, *DEVICE).finish()
    assert "2 point(s) already finished" in stdout
    assert {p: p.stat().st_mtime_ns for p in (out / "points").rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_ray_sweep_survives_losing_a_node(tiny_base, local_sweep, cluster, tmp_path):
    """SIGKILL every process of the second node while it works on a point: Ray reruns it on the head."""
    out = tmp_path / "sweep"
    node2 = cluster.nodes[1]
    run = RaySweep(tiny_base, out, cluster, *DEVICE)  # device stages: seconds per point, time to kill
    try:
        run.wait_for(f": on {node2.ip}/")  # the driver saw a point start on the second node
        assert node2.running(TASK_TITLE), "the point on the second node finished before the kill"
        node2.kill()
        assert node2.pids() == []
    finally:
        stdout, stderr = run.finish()
    assert run.proc.returncode == 0, stderr
    assert "the previous worker was lost" in stdout, stdout  # the lost point ran again, elsewhere
    assert_same_results(local_sweep, out, tiny_base)


@pytest.mark.slow
def test_ray_sweep_ctrl_c_cancels_and_resumes(tiny_base, local_sweep, cluster, tmp_path):
    out = tmp_path / "sweep"
    run = RaySweep(tiny_base, out, cluster, "--host-only")
    try:
        run.wait_for(": on 127.0.0.")  # a point started
        run.proc.send_signal(signal.SIGINT)
    finally:
        stdout, stderr = run.finish(timeout=60)
    assert run.proc.returncode == 130 and "interrupted" in stderr, stderr
    deadline = time.time() + 20  # the cancelled tasks' workers are gone, not left training
    while any(n.running(TASK_TITLE) for n in cluster.nodes) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(n.running(TASK_TITLE) for n in cluster.nodes)

    stdout, stderr = RaySweep(tiny_base, out, cluster, "--host-only").finish()
    assert "Traceback" not in stderr, stderr
    assert_same_results(local_sweep, out, tiny_base, stages=2)


@pytest.mark.parametrize("args,message,code", [
    (["--executor", "ray", "--jobs", "2"], "--jobs is for --executor local", 2),
    (["--ray-address", "127.0.0.1:1"], "--ray-address is for --executor ray", 2),
    (["--executor", "ray", "--max-retries", "-1"], "--max-retries must be at least 0", 2),
    (["--executor", "ray", "--ray-address", "nohostport"], "use HOST:PORT", 2),
    (["--executor", "ray", "--ray-address", "127.0.0.1:1"], "no Ray cluster at 127.0.0.1:1", 1),
])
def test_ray_sweep_errors_are_one_line(tiny_base, tmp_path, capsys, args, message, code):
    assert main(["sweep", "--base", str(tiny_base), "--out", str(tmp_path / "s"), "--cuts", "2",
                 "--epochs", "1", "--host-only", *args]) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinyml sweep: error: ") and message in err and "\n" not in err


def test_relocate_and_point_files(tmp_path):
    """Text files have the worker's paths rewritten to the driver's; binaries and layout stay; no escapes."""
    from tinyml.errors import TinymlError
    from tinyml.sweep.ray_executor import pack_dir, relocate, write_point_files

    files = {"record.json": b'{"checkpoint": "/w/tmp/points/p/best.pt"}', "best.pt": b"\0/w/tmp\0",
             "fw/Makefile": b"OUT = /w/tmp/points/p/fw\n"}
    moved = relocate(files, [("/w/tmp", "/home/u/sweep")])
    assert moved["record.json"] == b'{"checkpoint": "/home/u/sweep/points/p/best.pt"}'
    assert moved["best.pt"] == files["best.pt"] and moved["fw/Makefile"].startswith(b"OUT = /home/u/sweep")
    write_point_files(tmp_path / "p", moved)
    assert pack_dir(tmp_path / "p") == moved
    for bad in ("../x", "/etc/x"):
        with pytest.raises(TinymlError, match="outside its point directory"):
            write_point_files(tmp_path / "p", {bad: b""})


def test_point_resources():
    """CPUs per point from --threads; a real board's point asks for the node with the probe."""
    from tinyml.sweep.ray_executor import _unmet, point_resources
    from tinyml.sweep.runner import SweepContext

    ctx = SweepContext(base="b.pt", data="synthetic", out="o", threads=2)
    assert point_resources(ctx) == {"num_cpus": 2, "num_gpus": 0}
    real = SweepContext(base="b.pt", data="synthetic", out="o",
                        options=(("port", "/dev/ttyACM0"), ("board_name", "nucleo-l4r5zi")))
    need = point_resources(real)
    assert need["resources"] == {"board:nucleo-l4r5zi": 1}
    nodes = [{"Alive": True, "Resources": {"CPU": 8.0}},
             {"Alive": False, "Resources": {"CPU": 1.0, "board:nucleo-l4r5zi": 1.0}}]
    assert _unmet(need, nodes) == "1 CPU, 1 board:nucleo-l4r5zi"
    nodes[1]["Alive"] = True
    assert _unmet(need, nodes) is None

