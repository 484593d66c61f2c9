"""Server-rendered HTML of the dashboard: every value escaped, sections the live stream can replace one by one."""

from __future__ import annotations

import json
from html import escape
from urllib.parse import quote, urlencode

from lockhook.commands.store import Command
from receiver.dashboard_data import STATUSES, Filters, Overview

CSS = """
:root{--bg:#f6f7f9;--fg:#1d2330;--muted:#667085;--line:#e3e6ea;--ok:#127a3f;--bad:#b42318;--warn:#b54708;
--pend:#175cd3;--card:#fff}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;
background:var(--bg);color:var(--fg)}a{color:var(--pend)}header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;
align-items:center;padding:.75rem 1rem;background:#101828;color:#fff}header a{color:#fff;text-decoration:none}
header nav{display:flex;gap:1rem;flex-wrap:wrap}header .live{margin-left:auto;font-size:.85rem;opacity:.9}
.dot{display:inline-block;width:.6rem;height:.6rem;border-radius:50%;background:#98a2b3;margin-right:.3rem}
.live.on .dot{background:#32d583}main{padding:1rem;max-width:1200px;margin:0 auto}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:.75rem 1rem;
margin:0 0 1rem}h1{font-size:1.1rem;margin:0}h2{font-size:1.05rem;margin:.2rem 0 .6rem}
h3{font-size:.95rem;margin:1rem 0 .4rem;color:var(--muted)}.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{text-align:left;padding:.35rem .5rem;
border-bottom:1px solid var(--line);vertical-align:top;white-space:nowrap}th{color:var(--muted);font-weight:600}
td.wrap{white-space:normal;word-break:break-all}.badge{display:inline-block;padding:.05rem .45rem;
border-radius:999px;font-size:.8rem;font-weight:600;background:#eef;color:var(--pend)}
.b-succeeded,.b-delivered,.b-locked{background:#e7f6ec;color:var(--ok)}.b-failed,.b-rejected{background:#fdecea;
color:var(--bad)}.b-timed_out,.b-unlocked,.b-retrying{background:#fef4e6;color:var(--warn)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:.5rem}.card{border:1px solid
var(--line);border-radius:8px;padding:.4rem .6rem}.card b{display:block;font-size:1.3rem}.card span{color:
var(--muted);font-size:.8rem}form.filters{display:flex;flex-wrap:wrap;gap:.5rem;margin-bottom:.6rem}
input,select,button{font:inherit;padding:.3rem .5rem;border:1px solid #c8ccd2;border-radius:6px;background:#fff}
button{cursor:pointer;background:#101828;color:#fff;border-color:#101828}button.secondary{background:#fff;
color:var(--fg)}pre{white-space:pre-wrap;word-break:break-all;background:#f2f4f7;padding:.5rem;border-radius:6px;
max-height:20rem;overflow:auto;font-size:.8rem}.muted{color:var(--muted)}.empty{color:var(--muted);
font-style:italic}ol.timeline{list-style:none;padding:0;margin:0}ol.timeline li{border-left:3px solid var(--line);
padding:.2rem 0 .6rem .8rem}ol.timeline li.k-resolved{border-color:var(--ok)}ol.timeline li.k-notification
{border-color:var(--pend)}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}
dt{color:var(--muted)}dd{margin:0;word-break:break-all}.login{max-width:26rem;margin:3rem auto}
.login input{width:100%;margin:.5rem 0}.error{color:var(--bad)}
@media (max-width:640px){.wide{display:none}main{padding:.5rem}section{padding:.6rem}}
"""


def e(value) -> str:
    return "" if value is None else escape(str(value), quote=True)


def t(iso: str | None) -> str:
    """A timestamp the script shows in local time; UTC text without it."""
    if not iso:
        return '<span class="muted">-</span>'
    return f'<time datetime="{e(iso)}">{e(iso[:19].replace("T", " "))}Z</time>'


def badge(value: str | None) -> str:
    return f'<span class="badge b-{e(value)}">{e(value)}</span>' if value else ""


def duration(ms: int | None) -> str:
    if ms is None:
        return '<span class="muted">-</span>'
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms // 60_000} min {ms % 60_000 // 1000} s"


def _table(head: list[str], rows: list[str], empty: str, wide: set[int] = frozenset()) -> str:
    if not rows:
        return f'<p class="empty">{e(empty)}</p>'
    ths = "".join(f'<th{" class=wide" if i in wide else ""}>{e(h)}</th>' for i, h in enumerate(head))
    return f'<div class="scroll"><table><thead><tr>{ths}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _td(content: str, wide: bool = False, cls: str = "") -> str:
    classes = " ".join(c for c in ("wide" if wide else "", cls) if c)
    return f'<td class="{classes}">{content}</td>' if classes else f"<td>{content}</td>"


def device_link(device: str | None) -> str:
    if not device:
        return '<span class="muted">-</span>'
    return f'<a href="/dashboard?{e(urlencode({"device": device}))}">{e(device)}</a>'


def command_link(command_id: str | None) -> str:
    if not command_id:
        return '<span class="muted">-</span>'
    return f'<a href="/dashboard/commands/{e(quote(command_id, safe=""))}">{e(command_id[:16])}</a>'


def performed(c: Command) -> str:
    parts = [p for p in (c.performed_via, c.method) if p]
    return e(" / ".join(parts)) if parts else '<span class="muted">-</span>'


def time_to_confirmation(c: Command) -> str:
    if c.status in ("succeeded", "failed"):
        return duration(c.latency_ms) + (" (late)" if c.late else "")
    if c.status == "timed_out":
        return '<span class="muted">no confirmation</span>'
    return '<span class="muted">-</span>'


def command_row(c: Command) -> str:
    error = f'<span title="{e(c.error_message)}">{e(c.error_code)}</span>' if c.error_code else ""
    cells = [
        _td(t(c.created_at)), _td(command_link(c.command_id)), _td(device_link(c.device_id)), _td(e(c.action)),
        _td(e(c.via), wide=True), _td(badge(c.status.value)), _td(error), _td(performed(c), wide=True),
        _td(time_to_confirmation(c)),
    ]
    return f'<tr data-command="{e(c.command_id)}" data-status="{e(c.status.value)}">{"".join(cells)}</tr>'


COMMAND_HEAD = ["created", "command", "device", "action", "via", "status", "error", "performed via", "confirmed in"]


def commands_section(ov: Overview, filters: Filters) -> str:
    options = "".join(f'<option value="{e(s)}"{" selected" if filters.status == s else ""}>{e(s)}</option>'
                      for s in STATUSES)
    devices = "".join(f'<option value="{e(d)}">' for d in ov.devices)
    form = (
        '<form class="filters" method="get" action="/dashboard">'
        f'<input name="device" list="devices" placeholder="device id" value="{e(filters.device)}" '
        f'aria-label="device"><datalist id="devices">{devices}</datalist>'
        f'<select name="status" aria-label="status"><option value="">any status</option>{options}</select>'
        '<button type="submit">Filter</button><a class="muted" href="/dashboard">clear</a></form>'
    )
    wide = {4, 7}
    pending = _table(COMMAND_HEAD, [command_row(c) for c in ov.pending], "No pending commands.", wide)
    recent = _table(COMMAND_HEAD, [command_row(c) for c in ov.recent], "No resolved commands yet.", wide)
    return (f"<h2>Commands</h2>{form}<h3>Pending ({len(ov.pending)})</h3>{pending}"
            f"<h3>Recent</h3>{recent}")


def locks_section(ov: Overview) -> str:
    rows = []
    for lock in ov.locks:
        state = {True: "locked", False: "unlocked"}.get(lock.get("locked"), "unknown")
        how = " / ".join(x for x in (lock.get("method"), lock.get("performed_via")) if x)
        rows.append("<tr>" + "".join([
            _td(device_link(lock["device_id"])), _td(badge(state)), _td(t(lock.get("occurred_at"))),
            _td(e(how) or '<span class="muted">-</span>'), _td(e(lock.get("event_type")), wide=True),
            _td(e(lock.get("source_event")), wide=True),
        ]) + "</tr>")
    table = _table(["device", "state", "last change", "how", "event", "source event"], rows,
                   "No lock events yet.", {4, 5})
    return f"<h2>Locks</h2>{table}"


def _delivery_counts(ov: Overview) -> str:
    by_endpoint: dict[str, dict[str, int]] = {}
    for field, value in ov.stats["deliveries"].items():
        endpoint, _, outcome = field.rpartition(":")
        by_endpoint.setdefault(endpoint, {})[outcome] = value
    rows = [f"<tr><td>{e(ep)}</td><td>{c.get('accepted', 0)}</td><td>{c.get('duplicate', 0)}</td>"
            f"<td>{c.get('quarantined', 0)}</td></tr>" for ep, c in sorted(by_endpoint.items())]
    return _table(["endpoint", "accepted", "duplicate", "quarantined"], rows, "No deliveries yet.")


def deliveries_section(ov: Overview) -> str:
    events = []
    for ev in ov.events:
        notes = " ".join(x for x in (
            f"lock {ev['lock']}" if ev.get("lock") else "", "parked" if ev.get("parked") else "",
            ev.get("problem") or "") if x)
        events.append("<tr>" + "".join([
            _td(t(ev.get("received_at"))), _td(e(ev.get("event_type"))), _td(device_link(ev.get("device_id"))),
            _td(e(ev.get("endpoint")), wide=True), _td(e(ev.get("delivery_id")), wide=True),
            _td(command_link(ev.get("command_id"))), _td(e(notes), wide=True),
        ]) + "</tr>")
    dups = ["<tr>" + _td(t(d.get("at"))) + _td(e(d.get("endpoint"))) + _td(e(d.get("delivery_id"))) + "</tr>"
            for d in ov.duplicates]
    quarantine = []
    for q in ov.quarantined:
        more = f" (first {len(q['body'])} chars of {q['size']} bytes)" if q["size"] > len(q["body"]) else ""
        quarantine.append("<tr>" + "".join([
            _td(t(q.get("received_at"))), _td(e(q["endpoint"])), _td(e(q["delivery_id"])),
            _td(f'<details data-key="{e(q["stream_id"])}"><summary>raw body, {q["size"]} bytes</summary>'
                f'<pre>{e(q["body"])}</pre>{e(more)}</details>', cls="wrap"),
        ]) + "</tr>")
    failed = []
    for n in ov.failed_notifications:
        error = " ".join(str(x) for x in (n.get("last_status_code"), n.get("last_error")) if x)
        failed.append(f'<tr data-notification="{e(n["id"])}">' + "".join([
            _td(t(n.get("failed_at"))), _td(e(n.get("outcome"))), _td(e(n.get("label")), wide=True),
            _td(e(n.get("attempts"))), _td(e(error), cls="wrap"),
            _td(command_link(n["command_id"]) if n.get("command_id") else device_link(n.get("device_id"))),
            _td(f'<form method="post" class="resend" action="/dashboard/notifications/'
                f'{e(quote(n["id"], safe=""))}/retry"><button type="submit">Re-send</button></form>'),
        ]) + "</tr>")
    anomalies = ["<tr>" + _td(t(a.get("at"))) + _td(e(a.get("kind"))) + _td(
        e(", ".join(f"{k}={v}" for k, v in a.items() if k not in ("at", "kind"))), cls="wrap") + "</tr>"
        for a in ov.anomalies]
    return (
        "<h2>Deliveries</h2>" + _delivery_counts(ov)
        + "<h3>Recent events</h3>" + _table(
            ["received", "event", "device", "endpoint", "delivery", "command", "notes"], events,
            "No events yet.", {3, 4, 6})
        + "<h3>Duplicates</h3>" + _table(["at", "endpoint", "delivery"], dups, "No duplicate deliveries.")
        + "<h3>Quarantined</h3>" + _table(["received", "endpoint", "delivery", "body"], quarantine,
                                          "Nothing quarantined.")
        + f'<h3 id="failed-notifications">Failed notifications ({len(ov.failed_notifications)})</h3>' + _table(
            ["failed", "outcome", "target", "attempts", "last error", "command / device", ""], failed,
            "No failed notifications.", {2})
        + "<h3>Anomalies</h3>" + _table(["at", "kind", "details"], anomalies, "No anomalies.")
    )


def summary_section(ov: Overview) -> str:
    deliveries = ov.stats["deliveries"]
    commands = ov.stats["commands"]
    notifications = ov.stats["notifications"]

    def total(outcome: str) -> int:
        return sum(v for k, v in deliveries.items() if k.endswith(":" + outcome))

    cards = [
        ("accepted", total("accepted")), ("duplicates", total("duplicate")), ("quarantined", total("quarantined")),
        ("events", sum(ov.stats["events"].values())), ("pending", ov.stats["pending"]["pending"]),
        ("succeeded", commands.get("succeeded", 0)), ("failed", commands.get("failed", 0)),
        ("timed out", commands.get("timed_out", 0)), ("rejected", commands.get("rejected", 0)),
        ("late results", commands.get("late_result", 0)),
        ("notified", notifications.get("delivered", 0)), ("notify failed", len(ov.failed_notifications)),
    ]
    return '<div class="cards">' + "".join(
        f'<div class="card"><b data-count="{e(label)}">{value}</b><span>{e(label)}</span></div>'
        for label, value in cards) + "</div>"


def overview_sections(ov: Overview, filters: Filters) -> dict[str, str]:
    return {"summary": summary_section(ov), "commands": commands_section(ov, filters),
            "locks": locks_section(ov), "deliveries": deliveries_section(ov)}


def timeline_entry(entry: dict) -> str:
    kind = entry.get("kind", "")
    skip = {"kind", "at"}
    if kind == "notification":
        text = (f'{e(entry.get("type"))} to {e(entry.get("target"))}: attempt {e(entry.get("attempt"))} '
                f'{badge(entry.get("result"))} {e(entry.get("status_code") or "")} {e(entry.get("error") or "")}')
    elif kind == "resolved":
        text = f'{badge(entry.get("status"))} by {e(entry.get("by"))}' + (" (late)" if entry.get("late") else "")
    elif kind == "event":
        text = f'{e(entry.get("event_type"))} <span class="muted">{e(entry.get("event"))}</span>'
    elif kind == "ids_attached":
        text = f'{e(entry.get("id_kind"))} = {e(entry.get("value"))}'
    else:
        text = e(", ".join(f"{k}={v}" for k, v in entry.items() if k not in skip and v not in
                                          (None, "")))
    return f'<li class="k-{e(kind)}">{t(entry.get("at"))} <b>{e(kind)}</b> {text}</li>'


def command_section(command: Command, timeline: list[dict]) -> str:
    fields = [("status", badge(command.status.value) + (" late" if command.late else "")),
              ("device", device_link(command.device_id)), ("action", e(command.action)), ("via", e(command.via)),
              ("created", t(command.created_at)), ("deadline", t(command.deadline_at)),
              ("resolved", t(command.resolved_at)), ("confirmed in", time_to_confirmation(command)),
              ("resolved by", e(command.resolved_by)), ("performed via", performed(command)),
              ("error", e(" ".join(x for x in (command.error_code, command.error_message) if x))),
              ("custom_id", e(command.custom_id)), ("action_id", e(command.action_id)),
              ("action_attempt_id", e(command.action_attempt_id)),
              ("metadata", e(json.dumps(command.metadata)) if command.metadata else "")]
    dl = "".join(f"<dt>{e(k)}</dt><dd>{v or '-'}</dd>" for k, v in fields)
    items = "".join(timeline_entry(x) for x in timeline) or '<li class="empty">No timeline entries.</li>'
    return (f'<h2>Command <span class="muted">{e(command.command_id)}</span></h2><dl>{dl}</dl>'
            f'<h3>Timeline</h3><ol class="timeline">{items}</ol>')


def page(title: str, body: str, *, live: str | None = None, nav: bool = True) -> str:
    """A whole page; `live` is the query of the server-sent-events stream that keeps it current."""
    header = ""
    if nav:
        header = (
            '<header><h1><a href="/dashboard">lockhook</a></h1><nav><a href="/dashboard#commands">Commands</a>'
            '<a href="/dashboard#locks">Locks</a><a href="/dashboard#deliveries">Deliveries</a></nav>'
            '<span class="live" id="live"><span class="dot"></span><span id="live-text">offline</span></span>'
            '<form method="post" action="/dashboard/logout"><button class="secondary" type="submit">Log out'
            "</button></form></header>"
        )
    script = ('<script src="/dashboard/static/dashboard.js" defer></script>' if live is not None else "")
    data = f' data-live="{e(live)}"' if live is not None else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{CSS}</style>{script}</head>"
        f"<body{data}>{header}<main>{body}</main></body></html>"
    )


def overview_page(ov: Overview, filters: Filters) -> str:
    sections = overview_sections(ov, filters)
    body = "".join(f'<section id="{name}">{html}</section>' for name, html in sections.items())
    query = urlencode({k: v for k, v in (("view", "overview"), ("device", filters.device),
                                         ("status", filters.status)) if v})
    return page("lockhook dashboard", body, live=query)


def command_page(command: Command, timeline: list[dict]) -> str:
    body = f'<section id="command">{command_section(command, timeline)}</section>'
    return page(f"command {command.command_id}", body,
                live=urlencode({"view": "command", "id": command.command_id}))


def login_page(error: str | None = None, disabled: bool = False) -> str:
    if disabled:
        inner = ("<h2>Dashboard disabled</h2><p>Set <code>LOCKHOOK_API_TOKEN</code> to enable the API and this "
                 "dashboard.</p>")
    else:
        message = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
        inner = ('<h2>lockhook dashboard</h2><p class="muted">Sign in with the API token '
                 "(<code>LOCKHOOK_API_TOKEN</code>).</p>" + message +
                 '<form method="post" action="/dashboard/login"><label for="token">API token</label>'
                 '<input id="token" name="token" type="password" autocomplete="current-password" required '
                 'autofocus><button type="submit">Sign in</button></form>')
    return page("lockhook: sign in", f'<section class="login">{inner}</section>', nav=False)
