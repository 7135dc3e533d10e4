"""What the Faust worker needs to run against old brokers (Kafka 0.9) and secured ones.

0.9 brokers predate ApiVersions and CreateTopics. Clients must be told the protocol
version (``Settings.broker_api_version``), and every topic, the table changelog
included, must exist before the worker starts (``required_topics`` lists them;
``llmwatch topics`` prints the ``kafka-topics.sh`` lines or creates them where the
broker can). aiokafka 0.12, the last release that talks to 0.9, refuses
``end_offsets``/``beginning_offsets`` on brokers <= 0.10.0 although its fetcher
speaks ListOffsets v0; Faust table recovery calls both, so the worker's own consumer
gets them bound on the instance (``stream.compat.legacy_offsets``), only for such
brokers; the rest of the process keeps aiokafka as it is.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stream.settings import Settings

# Kafka's CreateTopics request arrived in 0.10.1; ListOffsets via end_offsets in 0.10.1 too.
_CREATE_TOPICS_SINCE = (0, 10, 1)
COMPACT = {"cleanup.policy": "compact"}


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def is_legacy(settings: Settings) -> bool:
    """True for brokers older than 0.10.1: no CreateTopics, aiokafka needs the shim."""
    v = settings.broker_api_version
    return v is not None and parse_version(v) < _CREATE_TOPICS_SINCE


def apply_aiokafka_shim(settings: Settings) -> bool:
    """For plain Faust apps llmwatch does not own (the benchmarks' comparison apps):
    patch aiokafka's consumer *class* for the whole process. True when patched.

    The llmwatch worker never calls this: its own consumer gets the same two calls
    bound on the instance (``stream.compat.legacy_offsets``), so nothing else in the
    process changes. Only for legacy brokers, and only when this aiokafka's fetcher
    has the v0 calls to delegate to (0.12 does).
    """
    if not is_legacy(settings):
        return False
    import aiokafka  # type: ignore[import-untyped]
    from aiokafka.consumer.fetcher import Fetcher  # type: ignore[import-untyped]

    from stream import compat

    consumer = aiokafka.AIOKafkaConsumer
    if consumer.end_offsets is compat._end_offsets:
        return True
    if not (hasattr(Fetcher, "end_offsets") and hasattr(Fetcher, "beginning_offsets")):
        return False
    consumer.end_offsets = compat._end_offsets
    consumer.beginning_offsets = compat._beginning_offsets
    return True


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context Faust (aiokafka) needs for SSL and SASL_SSL, from the same files."""
    if not settings.security_protocol.endswith("SSL"):
        return None
    ctx = ssl.create_default_context(
        cafile=str(settings.ssl_cafile) if settings.ssl_cafile is not None else None
    )
    if settings.ssl_certfile is not None and settings.ssl_keyfile is not None:
        password = settings.ssl_key_password
        ctx.load_cert_chain(
            str(settings.ssl_certfile),
            str(settings.ssl_keyfile),
            password=password.get_secret_value() if password is not None else None,
        )
    return ctx


def faust_broker_options(settings: Settings) -> dict[str, Any]:
    """Faust App keyword arguments for the protocol version and security settings."""
    import faust

    opts: dict[str, Any] = {}
    if settings.broker_api_version is not None:
        # Also the default for consumer_api_version and producer_api_version.
        opts["broker_api_version"] = settings.broker_api_version
    ctx = ssl_context(settings)
    if settings.security_protocol.startswith("SASL_"):
        password = settings.sasl_password
        opts["broker_credentials"] = faust.SASLCredentials(
            username=settings.sasl_username,
            password=password.get_secret_value() if password is not None else None,
            mechanism=settings.sasl_mechanism,
            ssl_context=ctx,
        )
    elif ctx is not None:
        opts["broker_credentials"] = faust.SSLCredentials(ctx)
    return opts


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def changelog_topic(app_id: str, table: str) -> str:
    """Faust's name for a table's changelog: ``<app_id>-<table>-changelog``."""
    return f"{app_id}-{table}-changelog"


def required_topics(settings: Settings, app_id: str, tables: Iterable[str]) -> list[TopicSpec]:
    """Every topic the worker reads or writes, with partitions and configs.

    Sources and changelogs share one partition count: an engine per partition number
    reads all source topics and its state lives in changelog partition N.
    """
    n = settings.partitions
    plain = [
        settings.topic_inference,
        settings.topic_gpu,
        settings.topic_metrics,
        settings.topic_feedback,
        settings.topic_alerts,
        settings.topic_deadletter,
    ]
    specs = [TopicSpec(t, n) for t in plain]
    specs.append(TopicSpec(settings.topic_silences, n, dict(COMPACT)))
    specs += [TopicSpec(changelog_topic(app_id, t), n, dict(COMPACT)) for t in tables]
    return specs


def kafka_topics_commands(
    specs: Iterable[TopicSpec], *, zookeeper: str | None, bootstrap: str, replication: int = 1
) -> list[str]:
    """``kafka-topics.sh --create`` lines: ``--zookeeper`` for old brokers, else bootstrap."""
    where = f"--zookeeper {zookeeper}" if zookeeper else f"--bootstrap-server {bootstrap}"
    lines = []
    for s in specs:
        line = (
            f"kafka-topics.sh {where} --create --topic {s.name} "
            f"--partitions {s.partitions} --replication-factor {replication}"
        )
        line += "".join(f" --config {k}={v}" for k, v in s.config.items())
        lines.append(line)
    return lines


class CreateTopicsUnsupported(RuntimeError):
    """The broker has no CreateTopics API (before 0.10.1); create topics with kafka-topics.sh."""


def ensure_topics(
    settings: Settings, specs: Iterable[TopicSpec], *, replication: int = 1, timeout_s: float = 30
) -> dict[str, str]:
    """Create the missing topics through the Admin API; returns name -> "created"/"exists".

    Raises CreateTopicsUnsupported for legacy brokers, RuntimeError naming the topic
    for any other failure.
    """
    if is_legacy(settings):
        raise CreateTopicsUnsupported(
            f"broker_api_version {settings.broker_api_version} has no CreateTopics; "
            "run the kafka-topics.sh lines from `llmwatch topics --zookeeper HOST:PORT`"
        )
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    from stream.settings import kafka_client_config

    conf: dict[str, str | int | float | bool] = {**kafka_client_config(settings)}
    admin = AdminClient(conf)
    wanted = list(specs)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    out = {s.name: "exists" for s in wanted if s.name in existing}
    new = [
        NewTopic(
            s.name, num_partitions=s.partitions, replication_factor=replication, config=s.config
        )
        for s in wanted
        if s.name not in existing
    ]
    if not new:
        return out
    for name, fut in admin.create_topics(new, request_timeout=timeout_s).items():
        try:
            fut.result(timeout=timeout_s)
            out[name] = "created"
        except TimeoutError:
            raise RuntimeError(f"topic {name}: broker did not answer CreateTopics") from None
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                out[name] = "exists"
                continue
            raise RuntimeError(f"topic {name}: {err}") from None
    return out


async def _legacy_partition_counts(
    settings: Settings, names: list[str], timeout_s: float
) -> dict[str, int]:
    # librdkafka 2.x sends ApiVersions whatever api.version.request says, and a 0.9
    # broker drops the connection on it; aiokafka (the worker's own client) can ask.
    from aiokafka import AIOKafkaClient

    client = AIOKafkaClient(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        api_version=settings.broker_api_version or "auto",
        security_protocol=settings.security_protocol,
        ssl_context=ssl_context(settings),
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        meta = await asyncio.wait_for(client.fetch_all_metadata(), timeout_s)
        found = meta.topics()
        return {n: len(meta.partitions_for_topic(n) or ()) for n in names if n in found}
    finally:
        await client.close()


class PartitionMismatch(RuntimeError):
    """Source topics and the engine changelog do not share one partition count."""


def check_copartitioned(
    settings: Settings, app_id: str, tables: Iterable[str], *, timeout_s: float = 15
) -> dict[str, int]:
    """Partition counts of the source topics and changelogs that exist; raises
    PartitionMismatch naming them when the counts differ.

    An engine per partition number reads partition N of every source topic and saves
    to changelog partition N, and Faust gives one worker equal partition numbers only
    of topics with equal counts: with unequal counts two workers would own engine N
    and overwrite each other's state, or a save would name a partition that does
    not exist. Topics not created yet are left out (they are checked next start).
    """
    from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

    from stream.settings import kafka_client_config

    names = [
        settings.topic_inference,
        settings.topic_gpu,
        settings.topic_metrics,
        settings.topic_feedback,
        *(changelog_topic(app_id, t) for t in tables),
    ]
    if is_legacy(settings):
        counts = asyncio.run(_legacy_partition_counts(settings, names, timeout_s))
    else:
        conf: dict[str, str | int | float | bool] = {**kafka_client_config(settings)}
        meta = AdminClient(conf).list_topics(timeout=timeout_s).topics
        counts = {n: len(meta[n].partitions) for n in names if n in meta and meta[n].partitions}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{n} has {c}" for n, c in counts.items())
        raise PartitionMismatch(
            f"source topics and the engine changelog need one partition count: {listed}; "
            f"recreate them with {settings.partitions} (LLMWATCH_PARTITIONS; see llmwatch topics)"
        )
    return counts
