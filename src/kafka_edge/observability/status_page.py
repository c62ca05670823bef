"""The status page: a :class:`StatusSnapshot` as one self-contained HTML document.

Built with the standard library (``html.escape``) rather than a template engine such as Jinja2:
the page is a handful of tables, the proxy's runtime dependencies stay as they are, and escaping
does not depend on an engine's autoescape setting. Markup is written only by the helpers below;
every value passes through ``_cell``/``_text`` (``html.escape`` with quotes), because server
names, peers and refusal details are chosen by clients.

No script, no external asset (fonts, images, style sheets): one inline style sheet, allowed by
its hash in ``CONTENT_SECURITY_POLICY`` (which the admin endpoint sends with every answer), so a
value that escaped its cell could still run nothing. Elements tests and operators rely on:
``#instance``, ``#configuration``, ``table#clusters`` (``tr.cluster``), ``table#brokers``
(``tr.broker``), ``table#listeners`` (``tr.listener``), ``table#certificates``
(``tr.certificate``, ``.expiring`` under ``EXPIRING_DAYS``, ``.expired``), ``table#refusals``
(``tr.refusal``); each cell has a class naming its column. A table with no rows is replaced by
a ``p#<table id>-none`` that says so.
"""

from __future__ import annotations

import base64
import hashlib
import html
import time
from collections.abc import Iterable, Sequence

from kafka_edge.observability.status import StatusSnapshot

EXPIRING_DAYS = 14  # certificates closer than this to expiry are marked

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; background: #fff; }
h1 { font-size: 1.4em; margin: 0 0 .6em; }
h2 { font-size: 1.1em; margin: 1.6em 0 .4em; }
table { border-collapse: collapse; margin: .2em 0; }
th, td { border: 1px solid #c8c8c8; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.detail { max-width: 60em; overflow-wrap: anywhere; font-family: monospace; }
.ok { color: #116611; font-weight: 600; }
.bad { color: #aa1111; font-weight: 600; }
tr.expiring td { background: #fff4cc; }
tr.expired td, tr.unreadable td { background: #ffd9d9; }
p.none { color: #666; font-style: italic; }
"""
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; "
                           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def render(snapshot: StatusSnapshot) -> bytes:
    """The page (UTF-8)."""
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>kafka-edge {_text(snapshot.instance.version)} status</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>kafka-edge status</h1>",
        _instance(snapshot),
        _configuration(snapshot),
        _clusters(snapshot),
        _brokers(snapshot),
        _listeners(snapshot),
        _certificates(snapshot),
        _refusals(snapshot),
        f'<p class="none">Generated {_text(_when(snapshot.generated_at))}.</p>',
        "</body></html>\n",
    ]
    return "".join(parts).encode()


# -- sections ------------------------------------------------------------------------------------


def _instance(s: StatusSnapshot) -> str:
    i = s.instance
    if i.draining:
        state = _span("bad", "draining")
    elif i.ready:
        state = _span("ok", "ready")
    else:
        state = _span("bad", f"not ready: {i.ready_reason or 'starting'}")
    rows = [("version", _text(i.version)),
            ("state", state),
            ("process ids" if len(i.pids) > 1 else "process id",
             _text(", ".join(str(p) for p in i.pids))),
            ("workers", _text(str(i.workers))),
            ("started", _text(_when(i.started_at))),
            ("uptime", _text(_duration(i.uptime_s)))]
    return "<h2>Instance</h2>" + _facts("instance", rows)


def _configuration(s: StatusSnapshot) -> str:
    c = s.configuration
    reload = c.last_reload
    if reload is None:
        last = _text("none since start")
    else:
        outcome = _span("ok", "ok") if reload.ok else _span("bad", "error")
        last = f"{outcome} {_text(_when(reload.at))}: {_text(reload.message)}"
    rows = [("generation", _text(str(c.generation))),
            ("loaded", _text(_when(c.loaded_at))),
            ("last reload", last)]
    return "<h2>Configuration</h2>" + _facts("configuration", rows)


def _clusters(s: StatusSnapshot) -> str:
    rows = [_row("cluster", [("name", c.name), ("routing", c.routing), ("listener", c.listener),
                             ("bootstrap", c.bootstrap_edge),
                             ("upstream", ", ".join(c.upstream_bootstrap)),
                             ("num brokers", str(len(c.brokers))),
                             ("num bootstrap-connections", str(c.bootstrap_connections)),
                             ("num connections", str(c.connections))],
                 data={"cluster": c.name})
            for c in s.clusters]
    return "<h2>Clusters</h2>" + _table(
        "clusters", ["cluster", "routing", "listener", "bootstrap (edge)",
                     "upstream bootstrap servers", "#brokers", "#connections to bootstrap",
                     "#connections"], rows, "No cluster is configured.")


def _brokers(s: StatusSnapshot) -> str:
    rows = [_row("broker", [("cluster", c.name), ("num node", str(b.node_id)),
                            ("edge", b.edge_address or "(none)"),
                            ("upstream", b.upstream_address or "(not learned yet)"),
                            ("num connections", str(b.connections))],
                 data={"cluster": c.name, "node": str(b.node_id)})
            for c in s.clusters for b in c.brokers]
    return "<h2>Brokers</h2>" + _table(
        "brokers", ["cluster", "node id", "edge address (clients)", "upstream address",
                    "#connections"], rows,
        "No broker known yet: brokers appear once a cluster's metadata passed the edge.")


def _listeners(s: StatusSnapshot) -> str:
    rows = [_row("listener", [("name", x.name), ("routing", x.routing), ("bind", x.bind),
                              ("num connections", str(x.connections))],
                 data={"listener": x.name})
            for x in s.listeners]
    return "<h2>Connections by listener</h2>" + _table(
        "listeners", ["listener", "routing", "bind", "#connections open"], rows,
        "No listener.")


def _certificates(s: StatusSnapshot) -> str:
    rows = []
    for c in s.certificates:
        if c.not_after is None or c.days_left is None:
            state, expiry, left = "unreadable", c.error, ""
        else:
            state = ("expired" if c.days_left < 0
                     else "expiring" if c.days_left < EXPIRING_DAYS else "valid")
            expiry, left = _when(c.not_after), f"{c.days_left:.1f}"
        shown = {"expiring": f"expires within {EXPIRING_DAYS} days"}.get(state, state)
        rows.append(_row(f"certificate {state}",
                         [("listener", c.listener), ("file", c.file),
                          ("names", ", ".join(c.names)), ("not-after", expiry),
                          ("num days-left", left), ("state", shown)]))
    return "<h2>Certificates</h2>" + _table(
        "certificates", ["listener", "file", "names", "not after", "days left", "state"],
        rows, "No TLS certificate is configured.")


def _refusals(s: StatusSnapshot) -> str:
    rows = [_row("refusal", [("when", _when(r.at)), ("listener", r.listener),
                             ("reason", r.reason), ("peer", r.peer), ("detail", r.detail)],
                 data={"reason": r.reason})
            for r in s.refusals]
    return "<h2>Recent refusals</h2>" + _table(
        "refusals", ["time", "listener", "reason", "peer", "detail"], rows,
        "No connection refused.")


# -- markup: the only code that writes tags; values go through _text ------------------------------


def _text(value: str) -> str:
    return html.escape(value, quote=True)


def _span(cls: str, value: str) -> str:
    return f'<span class="{cls}">{_text(value)}</span>'


def _facts(table_id: str, rows: Sequence[tuple[str, str]]) -> str:
    """A two-column table of (label, markup already escaped) pairs."""
    body = "".join(f'<tr><th>{_text(label)}</th><td class="{_text(label.replace(" ", "-"))}">'
                   f"{markup}</td></tr>" for label, markup in rows)
    return f'<table id="{table_id}">{body}</table>'


def _row(cls: str, cells: Iterable[tuple[str, str]], *,
         data: dict[str, str] | None = None) -> str:
    """A row of plain-text cells, each (its class, its value)."""
    attrs = "".join(f' data-{k}="{_text(v)}"' for k, v in (data or {}).items())
    tds = "".join(f'<td class="{_text(cls_)}">{_text(value)}</td>' for cls_, value in cells)
    return f'<tr class="{_text(cls)}"{attrs}>{tds}</tr>'


def _table(table_id: str, headings: Sequence[str], rows: Sequence[str], empty: str) -> str:
    if not rows:
        return f'<p class="none" id="{table_id}-none">{_text(empty)}</p>'
    head = "".join(f"<th>{_text(h)}</th>" for h in headings)
    return (f'<table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _duration(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock
