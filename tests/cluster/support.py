"""Throwaway Redis Clusters for destructive drills: started on free loopback ports, stopped by the test.

Only the processes a ``ThrowawayCluster`` started are ever signalled, by their own pids.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

# Every wait below is bounded: a drill that does not converge fails instead of hanging.
STARTUP_SECONDS = 20.0
CLUSTER_NODE_TIMEOUT_MS = 2000


def free_cluster_port() -> int:
    """A loopback port that is free, and whose cluster bus port (+10000) is free too.

    Drawn from 20000-29999, below the kernel's ephemeral range, so neither collides with an outgoing
    connection's port.
    """
    for _ in range(200):
        port = random.randint(20000, 29999)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise AssertionError("no free port pair for a cluster node in 20000-39999")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def redis_cli(*args: str, timeout: float = 120) -> str:
    """Run redis-cli against 127.0.0.1; its stdout, or an AssertionError with its output."""
    done = subprocess.run(["redis-cli", *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"redis-cli {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def wait_until(condition, what: str, timeout: float = STARTUP_SECONDS) -> None:
    """Poll ``condition`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.1)


def node_client(port: int) -> redis.Redis:
    """A plain client of one node (no redirections followed)."""
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, socket_connect_timeout=5)


def cluster_state_ok(port: int) -> bool:
    """The node answers and says ``cluster_state:ok``."""
    try:
        return node_client(port).cluster("info")["cluster_state"] == "ok"
    except redis.RedisError:
        return False


def slot_owner(seed_port: int, key: str) -> int:
    """The port of the master that serves ``key``'s slot, from the cluster's own CLUSTER KEYSLOT/SLOTS."""
    client = node_client(seed_port)
    slot = int(client.cluster("keyslot", key))
    for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
        if start <= slot <= end:
            return int(master[1])
    raise AssertionError(f"slot {slot} of {key!r} is served by no master")


def slots_of(seed_port: int) -> dict[int, int]:
    """How many slots each master (by port) serves."""
    counts: dict[int, int] = {}
    for start, end, master, *_ in node_client(seed_port).execute_command("CLUSTER SLOTS"):
        counts[int(master[1])] = counts.get(int(master[1]), 0) + end - start + 1
    return counts


def slot_map(seed_port: int) -> dict[int, int]:
    """Each slot's master (by port)."""
    owners: dict[int, int] = {}
    for start, end, master, *_ in node_client(seed_port).execute_command("CLUSTER SLOTS"):
        owners.update(dict.fromkeys(range(start, end + 1), int(master[1])))
    return owners


@dataclass
class ThrowawayCluster:
    """Masters without replicas on free loopback ports, data under ``root``; no persistence."""

    root: Path
    ports: list[int]
    procs: dict[int, subprocess.Popen] = field(default_factory=dict)

    @property
    def seeds(self) -> str:
        """The DEDUP_SHARDS value of this cluster."""
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start_node(self, port: int) -> None:
        """Start (or restart) the node of ``port``; it keeps its nodes.conf, not its keys."""
        data = self.root / str(port)
        data.mkdir(parents=True, exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [
                "redis-server",
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS),
                "--cluster-require-full-coverage", "no",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(data),
                "--logfile", str(data / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        wait_until(lambda: _answers(port), f"redis-server on {port}")

    def create(self) -> None:
        """Start every node and join them: each master gets an equal share of the 16384 slots."""
        for port in self.ports:
            self.start_node(port)
        redis_cli(
            "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
            "--cluster-replicas", "0", "--cluster-yes",
        )  # fmt: skip
        self.wait_ok()

    def wait_ok(self, ports: list[int] | None = None) -> None:
        """Wait until every node (or those of ``ports``) says cluster_state:ok."""
        for port in ports or self.ports:
            wait_until(lambda port=port: cluster_state_ok(port), f"cluster_state:ok on {port}")

    def kill(self, port: int) -> None:
        """SIGKILL one master, as a crash would: its keys are gone, its slots unserved."""
        proc = self.procs.pop(port)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop every node this object started (by pid)."""
        for port in list(self.procs):
            proc = self.procs.pop(port)
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


def _answers(port: int) -> bool:
    try:
        return bool(node_client(port).ping())
    except redis.RedisError:
        return False


@contextmanager
def throwaway_cluster(root: Path, masters: int = 3) -> Iterator[ThrowawayCluster]:
    """A new cluster of ``masters`` masters for one test; stopped afterwards whatever happened."""
    cluster = ThrowawayCluster(root, [free_cluster_port() for _ in range(masters)])
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.stop()
