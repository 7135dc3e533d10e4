"""Receiver configs (+ Settings secrets) -> live notifiers; the secrets they hold."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from connectors.notify import (
    AlertmanagerConfig,
    AlertmanagerNotifier,
    Clock,
    ConsoleNotifier,
    JsonFileMessageStore,
    Notifier,
    PagerDutyConfig,
    PagerDutyNotifier,
    SlackBotConfig,
    SlackBotNotifier,
    SlackWebhookConfig,
    SlackWebhookNotifier,
    WebhookConfig,
    WebhookNotifier,
)
from connectors.notify.stores import MessageStore
from stream.settings import Settings

from .config import (
    AlertmanagerReceiver,
    ConsoleReceiver,
    NotifyConfigError,
    PagerDutyReceiver,
    Receiver,
    SlackBotReceiver,
    SlackWebhookReceiver,
    WebhookReceiver,
    read_secret,
)
from .shared import SharedMessageStore, SharedState


def _set(secret: SecretStr | None) -> SecretStr | None:
    # Compose passes unset receivers as empty strings: empty means off.
    return secret if secret is not None and secret.get_secret_value() else None


def _secret(file: Path | None, env: SecretStr | None, field: str, env_name: str) -> SecretStr:
    if file is not None:
        return read_secret(file, field)
    found = _set(env)
    if found is None:
        raise NotifyConfigError(f"{field}: no secret; set {env_name} or {field}_file")
    return found


def env_receivers(settings: Settings) -> list[Receiver]:
    """The receivers Settings alone turns on (used when there is no config file)."""
    found: list[Receiver] = []
    if _set(settings.pagerduty_routing_key):
        found.append(PagerDutyReceiver(type="pagerduty", name="pagerduty"))
    if _set(settings.slack_webhook_url):
        found.append(SlackWebhookReceiver(type="slack_webhook", name="slack"))
    if _set(settings.slack_bot_token) and settings.slack_channel:
        found.append(SlackBotReceiver(type="slack_bot", name="slack-bot"))
    if _set(settings.webhook_url):
        found.append(WebhookReceiver(type="webhook", name="webhook"))
    return found


def build_notifier(
    spec: Receiver,
    settings: Settings,
    state_dir: Path,
    clock: Clock | None,
    shared: SharedState | None = None,
) -> Notifier:
    where = f"receivers[{spec.name}]"
    if isinstance(spec, PagerDutyReceiver):
        key = _secret(
            spec.routing_key_file,
            settings.pagerduty_routing_key,
            f"{where}.routing_key",
            "LLMWATCH_PAGERDUTY_ROUTING_KEY",
        )
        pd = PagerDutyConfig(
            routing_key=key, url=spec.api_url, client_url=spec.client_url, timeout_s=spec.timeout_s
        )
        return PagerDutyNotifier(spec.name, pd, clock=clock)
    if isinstance(spec, SlackWebhookReceiver):
        url = _secret(
            spec.url_file, settings.slack_webhook_url, f"{where}.url", "LLMWATCH_SLACK_WEBHOOK_URL"
        )
        return SlackWebhookNotifier(
            spec.name, SlackWebhookConfig(url=url, timeout_s=spec.timeout_s), clock=clock
        )
    if isinstance(spec, SlackBotReceiver):
        token = _secret(
            spec.token_file, settings.slack_bot_token, f"{where}.token", "LLMWATCH_SLACK_BOT_TOKEN"
        )
        channel = spec.channel or settings.slack_channel
        if not channel:
            raise NotifyConfigError(f"{where}.channel: set it or LLMWATCH_SLACK_CHANNEL")
        bot = SlackBotConfig(
            token=token,
            channel=channel,
            base_url=spec.api_base_url,
            resolve_mode=spec.resolve_mode,
            timeout_s=spec.timeout_s,
        )
        # Remembers the message per fingerprint so a restart updates instead of reposting.
        store: MessageStore = JsonFileMessageStore(state_dir / f"slack-{spec.name}.json")
        if shared is not None:  # other replicas' messages too, so none is posted twice
            store = SharedMessageStore(spec.name, store, shared)
        return SlackBotNotifier(spec.name, bot, store=store, clock=clock)
    if isinstance(spec, WebhookReceiver):
        url = _secret(spec.url_file, settings.webhook_url, f"{where}.url", "LLMWATCH_WEBHOOK_URL")
        hmac_secret = (
            read_secret(spec.hmac_secret_file, f"{where}.hmac_secret")
            if spec.hmac_secret_file is not None
            else _set(settings.webhook_secret)
        )
        hook = WebhookConfig(
            url=url,
            hmac_secret=hmac_secret,
            external_url=spec.external_url,
            timeout_s=spec.timeout_s,
            rate_per_s=spec.rate_per_s,
        )
        return WebhookNotifier(spec.name, hook, clock=clock)
    if isinstance(spec, AlertmanagerReceiver):
        am = AlertmanagerConfig(
            url=SecretStr(spec.api_url), resend_s=spec.resend_s, timeout_s=spec.timeout_s
        )
        return AlertmanagerNotifier(spec.name, am, clock=clock)
    assert isinstance(spec, ConsoleReceiver)
    return ConsoleNotifier(spec.name, path=spec.path)


def known_secrets(settings: Settings, specs: list[Receiver]) -> list[SecretStr]:
    """Every secret the notifier may hold, for the process-wide log redactor."""
    found = [
        s
        for s in (
            settings.api_token,
            settings.pagerduty_routing_key,
            settings.slack_webhook_url,
            settings.slack_bot_token,
            settings.webhook_url,
            settings.webhook_secret,
            settings.sasl_password,
            settings.ssl_key_password,
        )
        if _set(s) is not None
    ]
    for spec in specs:
        for attr in ("routing_key_file", "url_file", "token_file", "hmac_secret_file"):
            path = getattr(spec, attr, None)
            if path is not None:
                found.append(read_secret(path, f"receivers[{spec.name}].{attr}"))
    return [s for s in found if s is not None]
