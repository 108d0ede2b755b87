"""A real one-node Apache Kafka broker (KRaft) on 127.0.0.1, for tests and for trying
``kafka_outbox`` mode on one machine.

Java 17+ and Maven are the only prerequisites: the broker's jars come from Maven Central
through ``kafka/pom.xml`` (``mvn package`` copies them), once, into a cache directory outside
the repository (``$ROCHALLOR_KAFKA_CACHE``, default ``~/.cache/rochallor/kafka``). The broker
runs as ``java -cp '<jars>/*' kafka.Kafka server.properties`` in a temporary directory, with
two free ports (client and controller), and is stopped with SIGTERM (SIGKILL after a grace).

By hand::

    python -m rochallor_server.testing.kafka_broker --topics workflow.jobs.charge-card

prints ``WE_KAFKA_SEED_BROKERS=127.0.0.1:<port>`` and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

KAFKA_VERSION = "4.4.0"
"""Must equal ``kafka.version`` in ``kafka/pom.xml``."""
PREFIX = "rochallor-kafka-"
_READY_LINE = "Kafka Server started"
_JAVA_OPTS = [
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-Djava.awt.headless=true",
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
    "-Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info",
]
_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data_dir}
# one node: every internal topic has one replica, or groups and transactions hang
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# tests: no delay before a group's first rebalance; topics are created explicitly
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
# a small machine
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=2
log.segment.bytes=16777216
"""


class KafkaBrokerError(RuntimeError):
    """The broker could not be set up, started or stopped."""


def cache_dir() -> Path:
    configured = os.environ.get("ROCHALLOR_KAFKA_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rochallor" / "kafka"


def _require(tool: str, why: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise KafkaBrokerError(f"`{tool}` not found on PATH: {why}")
    return found


def ensure_jars(version: str = KAFKA_VERSION) -> Path:
    """The directory holding the broker's jars, fetched with Maven on first use."""
    target = cache_dir() / version
    jars = target / "jars"
    if (target / "complete").exists() and any(jars.glob("kafka_2.13-*.jar")):
        return jars
    mvn = _require("mvn", "Maven fetches the Kafka broker jars (install Java 17 and Maven)")
    target.mkdir(parents=True, exist_ok=True)
    pom = target / "pom.xml"
    pom.write_text(
        resources.files(__package__).joinpath("kafka", "pom.xml").read_text(encoding="utf-8")
    )
    result = subprocess.run(
        [mvn, "-B", "-q", "-f", str(pom), f"-Dkafka.version={version}", "package"],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if result.returncode != 0:
        raise KafkaBrokerError(
            f"mvn could not fetch the Kafka {version} jars:\n{result.stdout}\n{result.stderr}"
        )
    shutil.rmtree(jars, ignore_errors=True)
    (target / "target" / "kafka-jars").rename(jars)
    shutil.rmtree(target / "target", ignore_errors=True)
    (target / "complete").write_text(version)
    return jars


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cluster_id() -> str:
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_orphans(base: Path | None = None) -> None:
    """Stop brokers (and remove their directories) whose owning process is gone."""
    base = base or Path(tempfile.gettempdir())
    for folder in base.glob(f"{PREFIX}*"):
        try:
            owner = int((folder / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if _alive(owner):
            continue
        with contextlib.suppress(OSError, ValueError):
            broker = int((folder / "broker.pid").read_text())
            if _alive(broker):
                os.killpg(broker, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


class KafkaBroker:
    """One broker: ``start()`` waits until it serves clients, ``stop()`` ends it.

    ``stop(remove=False)`` keeps its data and ports, so that ``start()`` brings the same broker
    back (an outage in a test).
    """

    def __init__(self, *, version: str = KAFKA_VERSION, java: str | None = None) -> None:
        self.version = version
        self._java = java
        self.dir: Path | None = None
        self.broker_port = 0
        self.controller_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._formatted = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        if self.dir is None:
            return ""
        try:
            return (self.dir / "broker.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _command(self, jars: Path, *args: str) -> list[str]:
        java = self._java or _require("java", "the Kafka broker needs Java 17 or newer")
        return [java, *_JAVA_OPTS, "-cp", f"{jars}/*", *args]

    def _prepare(self, jars: Path) -> None:
        reap_orphans()
        self.dir = Path(tempfile.mkdtemp(prefix=PREFIX))
        (self.dir / "owner.pid").write_text(str(os.getpid()))
        self.broker_port = _free_port()
        self.controller_port = _free_port()
        properties = self.dir / "server.properties"
        properties.write_text(
            _PROPERTIES.format(
                broker_port=self.broker_port,
                controller_port=self.controller_port,
                data_dir=self.dir / "data",
            )
        )
        result = subprocess.run(
            self._command(
                jars,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                _cluster_id(),
                "-c",
                str(properties),
                "--ignore-formatted",
            ),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise KafkaBrokerError(
                f"formatting the broker storage failed:\n{result.stdout}\n{result.stderr}"
            )
        self._formatted = True

    def start(self, timeout: float = 90.0) -> str:
        """Start (or restart) the broker; returns the bootstrap address once it is ready."""
        if self.running:
            raise KafkaBrokerError("broker already running")
        jars = ensure_jars(self.version)
        if not self._formatted:
            self._prepare(jars)
        assert self.dir is not None
        log_path = self.dir / "broker.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self._command(jars, "kafka.Kafka", str(self.dir / "server.properties")),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (self.dir / "broker.pid").write_text(str(self.proc.pid))
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                self.proc = None
                raise KafkaBrokerError(f"broker exited with {code} at start:\n{self.log()}")
            if _READY_LINE in self.log()[offset:] and self._accepts():
                return self.bootstrap
            if time.monotonic() > deadline:
                self.stop()
                raise KafkaBrokerError(f"broker not ready after {timeout}s:\n{self.log()}")
            time.sleep(0.1)

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.broker_port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self, *, remove: bool = True, grace: float = 15.0) -> None:
        """SIGTERM (SIGKILL after ``grace``); ``remove`` deletes its data too."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if remove and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
            self._formatted = False


async def create_topics(bootstrap: str, names: Sequence[str], *, partitions: int = 1) -> None:
    """Create topics (one replica each); existing ones are left as they are."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for name in names:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(name=name, num_partitions=partitions, replication_factor=1)]
                )
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m rochallor_server.testing.kafka_broker",
        description="Run a one-node Kafka broker on 127.0.0.1 until interrupted.",
    )
    parser.add_argument("--topics", default="", help="comma-separated topics to create")
    parser.add_argument("--partitions", type=int, default=1, help="partitions per topic (1)")
    parser.add_argument(
        "--fetch-only", action="store_true", help="only fetch the jars with Maven, then exit"
    )
    args = parser.parse_args(argv)
    if args.fetch_only:
        sys.stdout.write(f"{ensure_jars()}\n")
        return
    broker = KafkaBroker()
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        broker.start()
        topics = [t.strip() for t in args.topics.split(",") if t.strip()]
        if topics:
            import asyncio

            asyncio.run(create_topics(broker.bootstrap, topics, partitions=args.partitions))
        sys.stdout.write(
            f"Kafka {broker.version} ready: WE_KAFKA_SEED_BROKERS={broker.bootstrap}"
            f" WE_KAFKA_TRANSPORT=plaintext (Ctrl-C stops it)\n"
        )
        sys.stdout.flush()
        while not stop and broker.running:
            time.sleep(0.5)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
