"""The worker's ``/``: a page for people, linking its endpoints and the notifier's console.

The worker has no console of its own: alerts are worked on in the notifier's (its ``/``),
so this page says where that is: ``LLMWATCH_CONSOLE_URL`` when set, else this host on
``LLMWATCH_NOTIFY_WEB_PORT``.
"""

from __future__ import annotations

import html
from typing import Any


def console_url(configured: str, request_host: str, notify_port: int) -> str:
    """Where the console is: the configured URL, or this host on the notifier's port."""
    if configured:
        return configured
    host = request_host.rsplit(":", 1)[0] if request_host.count(":") == 1 else request_host
    if request_host.startswith("["):  # an IPv6 literal with a port: [::1]:6066
        host = request_host.rsplit("]", 1)[0] + "]"
    return f"http://{host or '127.0.0.1'}:{notify_port}/"


def home_page(app_id: str, console: str) -> str:
    app, link = html.escape(app_id), html.escape(console, quote=True)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>llmwatch worker {app}</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;margin:2em;color:#1d2433}}</style></head>
<body><h1>llmwatch worker <code>{app}</code></h1>
<p>Alerts are worked on in the notifier's web console: <a id="console" href="{link}">{link}</a></p>
<ul>
<li><a href="/healthz">/healthz</a>: partitions, restored state, offsets, whether it is busy</li>
<li><a href="/metrics">/metrics</a>: Prometheus</li>
<li><a href="/alerts">/alerts</a>: the alerts active in this worker's engines (JSON)</li>
</ul></body></html>
"""


def add_home(app: Any, configured_console: str, notify_port: int) -> None:
    async def home(web: Any, request: Any) -> Any:
        where = console_url(configured_console, request.host or "", notify_port)
        return web.html(home_page(app.conf.id, where))

    app.page("/")(home)
