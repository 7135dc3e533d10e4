"""``llmwatch notify``: deliver alerts to PagerDuty, Slack, webhooks; serve the silences API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

_LOGLEVELS = ("crit", "error", "warn", "info", "debug")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "notify",
        help="deliver alerts from the alerts topic to PagerDuty, Slack and webhooks",
        description=(
            "Consumes the alerts topic (LLMWATCH_NOTIFY_GROUP) and delivers each alert to the "
            "receivers its routing tree picks (LLMWATCH_NOTIFY_CONFIG; without one: the "
            "receivers whose secrets are set, plus the console). Silences and acks: HTTP API "
            "on LLMWATCH_NOTIFY_WEB_PORT. Needs LLMWATCH_BOOTSTRAP_SERVERS."
        ),
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="routing + receivers YAML (default: LLMWATCH_NOTIFY_CONFIG, else every "
        "receiver whose secret is set, plus the console)",
    )
    p.add_argument(
        "--host", default=None, help="address the HTTP API listens on (default LLMWATCH_WEB_HOST)"
    )
    p.add_argument(
        "--loglevel", choices=_LOGLEVELS, default=None, help="default: LLMWATCH_LOG_LEVEL or warn"
    )
    p.add_argument(
        "--check", action="store_true", help="validate the config and secrets, then exit"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stream.notify import NotifierService, default_config, load_config
    from stream.notify.receivers import build_notifier, env_receivers
    from stream.settings import load_settings

    settings = load_settings()
    path = args.config if args.config is not None else settings.notify_config
    config = load_config(path) if path is not None else default_config(env_receivers(settings))
    if args.check:
        for spec in config.receivers:
            build_notifier(spec, settings, Path(settings.state_dir) / "notify", None)
        names = ", ".join(f"{r.name} ({r.type})" for r in config.receivers)
        print(f"notify config ok: receivers {names}")
        return 0
    if not settings.bootstrap_servers:
        # An embedded broker here would be a private one that no worker writes alerts to.
        raise ValueError(
            "bootstrap_servers: set LLMWATCH_BOOTSTRAP_SERVERS to the broker the worker uses"
        )
    from stream.preflight import check_brokers

    check_brokers(settings)  # one line and exit code 2, not librdkafka's log
    return asyncio.run(_serve(NotifierService(settings, config), args))


async def _serve(service: Any, args: argparse.Namespace) -> int:
    from stream.notify import serve
    from stream.notify.logs import setup_logging

    setup_logging(args.loglevel or service.settings.log_level, service.redact)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await service.start()
    host = args.host or service.settings.web_host
    runner, port = await serve(service, host, service.settings.notify_web_port)
    names = ", ".join(r.name for r in service.config.receivers)
    print(
        f"llmwatch notify: brokers {service.settings.bootstrap_servers}, receivers {names}, "
        f"api http://{host}:{port}/api/silences",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await service.stop()
    return 0
