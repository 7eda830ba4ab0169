"""A real Ray cluster on this machine's loopback for the sweep tests: a head and worker nodes, each its own
`ray start --block` process group (its own temp dir and ports), so one node can be SIGKILLed alone and every
process a test started is stopped at the end, found by process session, never by name.

Nodes listen on 127.0.0.2, 127.0.0.3, ... (loopback addresses; Ray rewrites 127.0.0.1 to the machine's
network address, these it keeps).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from prune_cases import SUBPROCESS_ENV

RAY = str(Path(sys.executable).parent / "ray")
# Small and quick: no usage stats, no pre-started idle workers, a lost node noticed within ~2 s.
RAY_ENV = {**SUBPROCESS_ENV, "RAY_USAGE_STATS_ENABLED": "0", "RAY_enable_worker_prestart": "0",
           "RAY_prestart_worker_first_driver": "0", "RAY_health_check_initial_delay_ms": "0",
           "RAY_health_check_period_ms": "500", "RAY_health_check_timeout_ms": "1000",
           "RAY_health_check_failure_threshold": "3"}
OBJECT_STORE_BYTES = 100 * 1024 * 1024
START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    ip: str
    proc: subprocess.Popen
    temp_dir: Path
    log: Path

    def pids(self) -> list[int]:
        """Every live process of this node: those in the session its `ray start --block` leads (zombies,
        already dead and waiting to be reaped, do not count)."""
        out = []
        for d in Path("/proc").glob("[0-9]*"):
            try:
                state = (d / "stat").read_text().rsplit(") ", 1)[1][0]
                if os.getsid(int(d.name)) == self.proc.pid and state != "Z":
                    out.append(int(d.name))
            except (OSError, ValueError, IndexError):
                continue
        return out

    def running(self, title: str) -> list[int]:
        """Processes of this node whose title is `title` (a Ray worker shows `ray::TASK_NAME` while busy)."""
        out = []
        for pid in self.pids():
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode() == title:
                    out.append(pid)
            except OSError:
                continue
        return out

    def kill(self) -> None:
        """SIGKILL every process of the node at once, as a machine that loses power."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.time() + 10
        while self.pids() and time.time() < deadline:
            time.sleep(0.1)


@dataclass
class LocalCluster:
    """`ray start --head` plus `ray start --address` nodes on loopback addresses, stopped by `stop()`."""

    nodes: list[Node] = field(default_factory=list)
    port: int = 0

    @property
    def address(self) -> str:
        return f"{self.nodes[0].ip}:{self.port}"

    def _start(self, ip: str, args: list[str]) -> Node:
        tmp = Path(tempfile.mkdtemp(prefix="tmlray", dir="/tmp"))  # short: Ray's socket paths must fit
        log = tmp / "ray-start.log"
        ports = ["--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port"]
        argv = [RAY, "start", "--block", "--node-ip-address", ip, "--temp-dir", str(tmp),
                "--object-store-memory", str(OBJECT_STORE_BYTES), "--disable-usage-stats",
                "--include-log-monitor=false", *[x for p in ports for x in (p, str(free_port()))], *args]
        with log.open("w") as f:
            proc = subprocess.Popen(argv, env=RAY_ENV, stdout=f, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        node = Node(ip, proc, tmp, log)
        self.nodes.append(node)
        deadline = time.time() + START_TIMEOUT_S
        while "Ray runtime started" not in log.read_text():
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"ray start on {ip} failed:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        return node

    def start_head(self, num_cpus: int, resources: dict[str, float] | None = None) -> Node:
        self.port = free_port()
        return self._start("127.0.0.2", ["--head", "--port", str(self.port), "--num-cpus", str(num_cpus),
                                         "--include-dashboard=false", "--dashboard-port", str(free_port()),
                                         "--ray-client-server-port", str(free_port()),
                                         "--resources", json.dumps(resources or {})])

    def add_node(self, num_cpus: int, resources: dict[str, float] | None = None) -> Node:
        ip = f"127.0.0.{2 + len(self.nodes)}"
        return self._start(ip, ["--address", self.address, "--num-cpus", str(num_cpus),
                                "--resources", json.dumps(resources or {})])

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
        for node in self.nodes:
            shutil.rmtree(node.temp_dir, ignore_errors=True)
        self.nodes.clear()

    def leftovers(self) -> list[int]:
        return [pid for n in self.nodes for pid in n.pids()]
