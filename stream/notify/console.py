"""The notifier's web console at ``/``: one page, no CDN, no front-end build chain.

The server sends the page; a little plain JavaScript reads the same API everyone
else uses (``/api/alerts``, ``/api/silences``) every two seconds and redraws, so it
updates live without a reload. Its writes (silence, expire, acknowledge) are the
API's writes and carry the same bearer token, typed once into the page and kept in
the tab's session storage only. Each alert has an anchor (``/#alert-<fingerprint>``)
that links can point at.

What it shows is what the API exposes: active alerts with their explanation,
observed vs expected and bounds, since when, a chart of its recent points when the
worker has them (``/api/series``, proxied from ``LLMWATCH_WORKER_URL``), silenced
(by which silence) or acknowledged (by whom, why), and where they were delivered;
and, from the worker, the alerts still pending (``/api/pending``), which never reach
the notifier as events.
"""

from __future__ import annotations

import html

from aiohttp import web

POLL_MS = 2000

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2433;background:#f6f7f9}
header{background:#1d2433;color:#fff;padding:.6em 1em;display:flex;gap:1em;align-items:center}
header h1{font-size:1.1em;margin:0;flex:1}
header input{width:16em}
main{padding:1em;display:grid;gap:1em}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:.8em}
h2{font-size:1em;margin:0 0 .5em}
table{border-collapse:collapse;width:100%}
td,th{border-top:1px solid #eceff3;padding:.35em .5em;text-align:left;vertical-align:top}
.state{font-weight:600;text-transform:uppercase;font-size:.8em}
.firing{color:#b42318}.silenced{color:#6b7280}.acknowledged{color:#175cd3}
.inhibited{color:#b54708}
.resolved{color:#067647}
.labels code{background:#eef1f5;border-radius:3px;padding:0 .3em;margin-right:.2em}
.muted{color:#6b7280;font-size:.9em}
form.inline{display:flex;gap:.4em;flex-wrap:wrap;margin-top:.4em}
form.inline input[type=text]{min-width:14em}
#status.error{color:#b42318}
.pending{color:#7a5af8}
svg.spark{display:block;margin-top:.3em}
svg.spark .band{fill:#dbe4ff}svg.spark .exp{stroke:#6b7280;stroke-dasharray:3 2;fill:none}
svg.spark .obs{stroke:#b42318;fill:none;stroke-width:1.5}
"""

# Plain DOM calls only; text goes in through textContent, never innerHTML.
_SCRIPT = """
"use strict";
const POLL_MS = %(poll)d;
const tokenBox = document.getElementById("token");
tokenBox.value = sessionStorage.getItem("llmwatch-token") || "";
tokenBox.addEventListener("change", () => sessionStorage.setItem("llmwatch-token", tokenBox.value));

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
function when(epoch) {
  return new Date(epoch * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
}
function num(v) { return v === undefined || v === null ? "?" : Number(v).toPrecision(4); }
function quote(v) {
  return '"' + String(v).replace(/\\\\/g, "\\\\\\\\").replace(/"/g, '\\\\"') + '"';
}
function status(text, bad) {
  const s = document.getElementById("status");
  s.textContent = text; s.className = bad ? "error" : "";
}
async function call(method, path, body) {
  const headers = {"Authorization": "Bearer " + tokenBox.value};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const init = {method, headers};
  if (body !== undefined) init.body = JSON.stringify(body);
  const resp = await fetch(path, init);
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(data.error || resp.statusText);
  return data;
}
// The pipeline's view (Alertmanager v2 groups): fingerprint -> {status, group, receiver}.
let pipeline = {};
function inhibitors(item) {
  const seen = pipeline[item.alert.fingerprint];
  return seen ? seen.status.inhibitedBy || [] : [];
}
function stateOf(item) {
  if (item.alert.status === "resolved") return "resolved";
  if (inhibitors(item).length) return "inhibited";  // the pipeline's order: inhibit, then silence
  if (item.silenced_by) return "silenced";
  if (item.acknowledged) return "acknowledged";
  return "firing";
}
function titleOf(fp) {
  const seen = pipeline[fp];
  return seen ? seen.labels.alertname || fp : fp;
}
function silenceForm(item) {
  const labels = Object.entries(item.alert.labels || {}).sort();
  const matchers = el("input", {type: "text", name: "matchers",
    value: labels.map(([k, v]) => k + "=" + quote(v)).join(", ")});
  const duration = el("input", {type: "text", name: "duration", value: "2h", size: "5"});
  const comment = el("input", {type: "text", name: "comment", placeholder: "why"});
  const form = el("form", {class: "inline silence-form"}, matchers, duration, comment,
    el("button", {type: "submit"}, "Create silence"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await call("POST", "/api/silences", {
        matchers: matchers.value.split(/,\\s*(?=[A-Za-z_][A-Za-z0-9_]*\\s*[=!]~?)/),
        duration: duration.value, comment: comment.value, created_by: "console"});
      status("silence created"); refresh();
    } catch (e) { status("silence: " + e.message, true); }
  });
  return form;
}
function ackForm(item) {
  const comment = el("input", {type: "text", name: "ack-comment", placeholder: "comment"});
  const by = el("input", {type: "text", name: "by", value: "console", size: "8"});
  const form = el("form", {class: "inline ack-form"}, by, comment,
    el("button", {type: "submit"}, "Acknowledge"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await call("POST", "/api/acks", {fingerprint: item.alert.fingerprint, by: by.value,
        comment: comment.value, alert_id: item.alert.alert_id});
      status("acknowledged"); refresh();
    } catch (e) { status("ack: " + e.message, true); }
  });
  return form;
}
function alertRow(item) {
  const a = item.alert, state = stateOf(item);
  const labels = el("div", {class: "labels"},
    ...Object.entries(a.labels || {}).sort().map(([k, v]) => el("code", {}, k + "=" + v)));
  const b = a.bounds || {};
  const detail = el("div", {}, el("strong", {}, a.title), labels,
    el("div", {}, "observed " + num(a.observed) + " vs expected " + num(a.expected) +
      " (bounds " + num(b.lower) + " .. " + num(b.upper) + ")"),
    el("div", {class: "muted"}, a.explanation || a.summary || ""), chartFor(a.fingerprint));
  const note = el("div", {class: "muted note"});
  for (const fp of inhibitors(item)) {
    const cause = pipeline[fp] ? pipeline[fp].labels : {};
    const shared = Object.entries(cause).filter(([k, v]) => k !== "alertname" &&
      (a.labels || {})[k] === v).map(([k, v]) => k + "=" + v).join(", ");
    note.append("inhibited by ", el("a", {href: "#alert-" + fp, class: "cause"}, titleOf(fp)),
      shared ? " (" + shared + ") " : " ");
  }
  if (item.silenced_by) note.append("silenced by " + item.silenced_by);
  if (item.acknowledged) note.append(" acknowledged by " + item.acknowledged.by +
    (item.acknowledged.comment ? ": " + item.acknowledged.comment : ""));
  const sent = Object.entries(item.deliveries || {}).map(([r, o]) => r + ": " + o).join(", ");
  const actions = el("td", {});
  if (state !== "resolved") actions.append(silenceForm(item), ackForm(item));
  return el("tr", {id: "alert-" + a.fingerprint, "data-state": state, class: "alert"},
    el("td", {}, el("a", {href: "#alert-" + a.fingerprint}, "#"), " ",
      el("span", {class: "state " + state}, state), el("div", {class: "muted"}, a.severity)),
    el("td", {}, detail, note),
    el("td", {}, el("div", {}, "since " + a.starts_at.replace("T", " ")),
      el("div", {class: "muted"}, sent || "not delivered yet")),
    actions);
}
function silenceRow(s) {
  const expire = el("button", {type: "button", class: "expire"}, "Expire");
  expire.addEventListener("click", async () => {
    try {
      await call("DELETE", "/api/silences/" + encodeURIComponent(s.id));
      status("silence expired"); refresh();
    } catch (e) { status("expire: " + e.message, true); }
  });
  return el("tr", {id: "silence-" + s.id, class: "silence"},
    el("td", {}, s.id), el("td", {}, s.matchers.join(", ")), el("td", {}, s.state),
    el("td", {}, when(s.starts_at) + " .. " + when(s.ends_at)),
    el("td", {}, s.created_by + (s.comment ? ": " + s.comment : "")), el("td", {}, expire));
}
function groupRow(g) {
  const counts = {};
  for (const a of g.alerts) {
    const st = a.status.inhibitedBy.length ? "inhibited" : a.status.silencedBy.length ?
      "silenced" : "active";
    counts[st] = (counts[st] || 0) + 1;
  }
  const members = el("div", {});
  for (const a of g.alerts) {
    const name = a.labels.alertname || a.fingerprint;
    members.append(el("a", {href: "#alert-" + a.fingerprint}, name), " ");
  }
  return el("tr", {class: "group"},
    el("td", {class: "labels"},
      ...Object.entries(g.labels).sort().map(([k, v]) => el("code", {}, k + "=" + v))),
    el("td", {}, g.receiver.name),
    el("td", {}, Object.entries(counts).map(([k, n]) => n + " " + k).join(", ")),
    el("td", {}, members));
}
// The series around an alert, when the worker has it: observed over the expected band.
const SVG = "http://www.w3.org/2000/svg";
function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}
function sparkline(points) {
  const W = 220, H = 44, P = 2;
  const ts = points.map((p) => p.ts);
  const ys = points.flatMap((p) => [p.observed, p.expected, p.lower, p.upper])
    .filter((v) => v !== null && v !== undefined && isFinite(v));
  if (points.length < 2 || !ys.length) return null;
  const t0 = Math.min(...ts), t1 = Math.max(...ts), lo = Math.min(...ys), hi = Math.max(...ys);
  const x = (t) => (P + (W - 2 * P) * (t1 > t0 ? (t - t0) / (t1 - t0) : 0.5)).toFixed(1);
  const y = (v) => (H - P - (H - 2 * P) * (hi > lo ? (v - lo) / (hi - lo) : 0.5)).toFixed(1);
  const has = (v) => v !== null && v !== undefined;
  const line = (key) => points.filter((p) => has(p[key])).map((p) => x(p.ts) + "," + y(p[key]));
  const svg = svgEl("svg", {class: "spark", width: W, height: H, viewBox: "0 0 " + W + " " + H,
    role: "img", "aria-label": "observed vs expected, last " + points.length + " points"});
  const banded = points.filter((p) => has(p.lower) && has(p.upper));
  if (banded.length > 1) {
    const top = banded.map((p) => x(p.ts) + "," + y(p.upper));
    const bottom = banded.slice().reverse().map((p) => x(p.ts) + "," + y(p.lower));
    svg.append(svgEl("polygon", {class: "band", points: top.concat(bottom).join(" ")}));
  }
  const exp = line("expected"), obs = line("observed");
  if (exp.length > 1) svg.append(svgEl("polyline", {class: "exp", points: exp.join(" ")}));
  if (obs.length > 1) svg.append(svgEl("polyline", {class: "obs", points: obs.join(" ")}));
  const title = svgEl("title", {});
  title.textContent = "observed (red) vs expected (dashed) and its band, " +
    when(t0) + " .. " + when(t1);
  svg.append(title);
  return svg;
}
let series = {};  // fingerprint -> points, from the worker through /api/series
function chartFor(fp) {
  const pts = series[fp];
  return pts ? sparkline(pts) || "" : "";
}
function pendingRow(p) {
  const b = p.bounds || {};
  const labels = el("div", {class: "labels"},
    ...Object.entries(p.labels || {}).sort().map(([k, v]) => el("code", {}, k + "=" + v)));
  return el("tr", {id: "pending-" + p.fingerprint, "data-state": "pending", class: "alert"},
    el("td", {}, el("span", {class: "state pending"}, "pending"),
      el("div", {class: "muted"}, p.severity)),
    el("td", {}, el("strong", {}, (p.labels || {}).alertname || p.kind), labels,
      el("div", {}, "observed " + num(p.observed) + " vs expected " + num(p.expected) +
        " (bounds " + num(b.lower) + " .. " + num(b.upper) + ")"),
      el("div", {class: "muted"}, p.explanation || ""), chartFor(p.fingerprint)),
    el("td", {}, "since " + p.since.slice(0, 19).replace("T", " ")));
}
async function readWorker(fps) {
  // Pending alerts and charts come from the worker, through this notifier; without one
  // configured (or reachable), those parts are simply not shown.
  const pend = await fetch("/api/pending").then((r) => r.json()).catch(() => ({}));
  const got = {};
  if (!pend.configured || pend.error) return [pend, got];
  const all = [...new Set([...fps, ...pend.pending.map((p) => p.fingerprint)])].slice(0, 50);
  await Promise.all(all.map((fp) => fetch("/api/series?fingerprint=" + encodeURIComponent(fp))
    .then((r) => (r.ok ? r.json() : null)).then((b) => { if (b) got[fp] = b.points; })
    .catch(() => null)));
  return [pend, got];
}
function keepFocus(render) {
  // A redraw must not eat what someone is typing into a form.
  const active = document.activeElement;
  if (active && active.tagName === "INPUT" && active.id !== "token") return false;
  render(); return true;
}
let lastSeen = "";
async function refresh() {
  try {
    const [alerts, silences, groups] = await Promise.all([
      fetch("/api/alerts").then((r) => r.json()), fetch("/api/silences").then((r) => r.json()),
      // Groups and inhibition come from the Alertmanager-dialect API; without it, none.
      fetch("/api/v2/alerts/groups").then((r) => (r.ok ? r.json() : [])).catch(() => [])]);
    const [pend, points] = await readWorker(alerts.map((i) => i.alert.fingerprint));
    // Redraw only what changed: no flicker, and a form being used is not replaced.
    const seen = JSON.stringify([alerts, silences, groups, pend, points]);
    if (seen !== lastSeen && keepFocus(() => {
      pipeline = {};
      series = points;
      const pending = pend.pending || [];
      document.getElementById("pending-section").hidden = !pend.configured;
      document.getElementById("pending-note").textContent = pend.error ?
        "worker unreachable: " + pend.error : pending.length ? "" : "none";
      document.getElementById("pending").replaceChildren(...pending.map(pendingRow));
      for (const g of groups) {
        for (const a of g.alerts) pipeline[a.fingerprint] = {...a, group: g.labels};
      }
      const order = {firing: 0, acknowledged: 1, inhibited: 2, silenced: 3, resolved: 4};
      alerts.sort((x, y) => order[stateOf(x)] - order[stateOf(y)] ||
        x.alert.starts_at.localeCompare(y.alert.starts_at));
      document.getElementById("alerts").replaceChildren(...alerts.map(alertRow));
      document.getElementById("silences").replaceChildren(...silences.map(silenceRow));
      document.getElementById("groups").replaceChildren(...groups.map(groupRow));
      document.getElementById("counts").textContent = alerts.length + " alerts, " +
        silences.length + " silences";
    })) lastSeen = seen;
    const now = new Date().toISOString().slice(11, 19);
    document.getElementById("updated").textContent = "updated " + now + "Z";
  } catch (e) { status("cannot read the API: " + e.message, true); }
}
refresh();
setInterval(refresh, POLL_MS);
"""


def render(title: str = "llmwatch notifier") -> str:
    """The console page (the data arrives from the API once the page runs)."""
    name = html.escape(title)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name}</title><style>{_STYLE}</style></head>
<body>
<header><h1>{name}</h1><span id="counts"></span><span id="updated" class="muted"></span>
<label>API token <input id="token" type="password" autocomplete="off"></label></header>
<main>
<div id="status"></div>
<section><h2>Alerts</h2>
<table><thead><tr><th>state</th><th>alert</th><th>when</th><th>actions</th></tr></thead>
<tbody id="alerts"></tbody></table></section>
<section id="pending-section" hidden><h2>Pending <span id="pending-note" class="muted">
</span></h2>
<table><thead><tr><th>state</th><th>alert</th><th>since</th></tr></thead>
<tbody id="pending"></tbody></table></section>
<section><h2>Notification groups</h2>
<table><thead><tr><th>group</th><th>receiver</th><th>alerts</th><th>members</th></tr></thead>
<tbody id="groups"></tbody></table></section>
<section><h2>Silences</h2>
<table><thead><tr><th>id</th><th>matchers</th><th>state</th><th>window</th><th>by</th><th></th>
</tr></thead><tbody id="silences"></tbody></table></section>
</main>
<script>{_SCRIPT % {"poll": POLL_MS}}</script>
</body></html>
"""


async def page(request: web.Request) -> web.Response:
    return web.Response(
        text=render(),
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Content-Security-Policy": _CSP},
    )


# Everything comes from this origin; the script is inline, so it is allowed by hash-free
# 'unsafe-inline' (no third-party origin can be loaded anyway).
_CSP = "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"


def add_console(app: web.Application) -> None:
    """Serve the console at ``/`` of the notifier's API app."""
    app.router.add_get("/", page)
