"""Replay recorded deliveries or bare event bodies against a receiver, signed with fresh timestamps; sign by hand.

Inputs: fixtures ({"endpoint", "headers", "body"}: what RECORD_DIR writes), or bare event bodies as Seam's docs,
`events.list` (`{"events": [...]}`) or a support ticket give them, in JSON files, JSONL files or folders.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from lockhook.errors import ConfigError
from lockhook.ingest.fixtures import read_fixtures
from lockhook.ingest.signatures import signature_headers

ENDPOINTS = ("seam", "device-cloud")
SIGNATURE_HEADERS = {f"{p}-{n}" for p in ("svix", "webhook") for n in ("id", "timestamp", "signature")}
# hop-by-hop or recomputed by the client; never replayed
_SKIP_HEADERS = SIGNATURE_HEADERS | {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}
OUTCOMES = ("accepted", "duplicate", "quarantined", "rejected")


def delivery_id_of(headers: dict[str, str]) -> str | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    return lowered.get("svix-id") or lowered.get("webhook-id")


def header_prefix(headers: dict[str, str]) -> str:
    """Keep the sender's header style: `webhook-*` (Standard Webhooks) or `svix-*`."""
    lowered = {k.lower() for k in headers}
    return "webhook" if "webhook-id" in lowered and "svix-id" not in lowered else "svix"


def new_delivery_id() -> str:
    return "msg_" + uuid.uuid4().hex


def resign(fixture: dict, secret: str, delivery_id: str, timestamp: int | None = None) -> dict[str, str]:
    """The recorded headers minus the old signature, plus a fresh one for `delivery_id`."""
    headers = {k: v for k, v in (fixture.get("headers") or {}).items() if k.lower() not in _SKIP_HEADERS}
    if not any(k.lower() == "content-type" for k in headers):
        headers["content-type"] = "application/json"
    body = fixture["body"].encode()
    headers.update(signature_headers(secret, delivery_id, body, timestamp, prefix=header_prefix(fixture["headers"])))
    return headers


@dataclass
class Result:
    source: str
    endpoint: str
    delivery_id: str
    outcome: str
    reason: str = ""


@dataclass
class ReplayReport:
    results: list[Result] = field(default_factory=list)

    @property
    def counts(self) -> Counter:
        return Counter(r.outcome for r in self.results)

    @property
    def rejected(self) -> list[Result]:
        return [r for r in self.results if r.outcome == "rejected"]


def classify(response: httpx.Response) -> tuple[str, str]:
    """accepted / duplicate / quarantined from the receiver's answer; anything else is rejected with why."""
    try:
        data = response.json()
    except ValueError:
        data = {}
    status = data.get("status") if isinstance(data, dict) else None
    if response.status_code == 202 and status in ("accepted", "quarantined"):
        return status, ""
    if response.status_code == 200 and status == "duplicate":
        return "duplicate", ""
    error = data.get("error") if isinstance(data, dict) else None
    return "rejected", f"HTTP {response.status_code}" + (f" {error}" if error else "")


def is_fixture(data) -> bool:
    return isinstance(data, dict) and isinstance(data.get("body"), str) and "endpoint" in data


def bare_fixture(event: dict, endpoint: str) -> dict:
    """A bare event body as a delivery; its id comes from the content, so a second replay is a duplicate."""
    body = json.dumps(event, separators=(",", ":"))
    digest = hashlib.sha256(f"{endpoint}\n{body}".encode()).hexdigest()[:32]
    return {"endpoint": endpoint, "headers": {"svix-id": f"msg_{digest}"}, "body": body}


def _files(paths: list[str]) -> list[Path]:
    files = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ConfigError(f"no such file or folder: {raw}")
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl") and p.is_file())
            if not found:
                raise ConfigError(f"{raw}: no .json or .jsonl files in this folder")
            files += found
        else:
            files.append(path)
    return files


def _entries(source: str, data) -> list[tuple[str, object]]:
    """One parsed document as its deliveries: a fixture, an event, a list of them, or `{"events": [...]}`."""
    if isinstance(data, dict) and isinstance(data.get("events"), list) and not is_fixture(data):
        return [(f"{source}#events[{i}]", item) for i, item in enumerate(data["events"])]
    if isinstance(data, list):
        return [(f"{source}[{i}]", item) for i, item in enumerate(data)]
    return [(source, data)]


def load(paths: list[str], endpoint: str | None = None) -> list[tuple[str, dict]]:
    """Every delivery under these paths, validated enough to replay; bare bodies go to `endpoint`."""
    if endpoint is not None and endpoint not in ENDPOINTS:
        raise ConfigError(f"--endpoint must be one of {', '.join(ENDPOINTS)}")
    items = []
    for file in _files(paths):
        try:
            documents = list(read_fixtures(file))
        except ValueError as exc:
            raise ConfigError(f"{file}: not JSON ({exc})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{file}: not a text file") from None
        for source, data in (entry for doc in documents for entry in _entries(*doc)):
            if is_fixture(data):
                if data["endpoint"] not in ENDPOINTS:
                    raise ConfigError(f"{source}: endpoint must be one of {', '.join(ENDPOINTS)}")
                data.setdefault("headers", {})
                items.append((source, data))
            elif isinstance(data, dict) and isinstance(data.get("event_type"), str):
                if endpoint is None:
                    raise ConfigError(f"{source}: a bare event body; say where it goes with "
                                      "--endpoint seam or --endpoint device-cloud")
                items.append((source, bare_fixture(data, endpoint)))
            else:
                raise ConfigError(f"{source}: neither an event body (no event_type) nor a recorded delivery "
                                  "(endpoint, headers, body)")
    return items


def replay(items: list[tuple[str, dict]], url: str, secrets: dict[str, str | list[str]], rate: float | None = None,
           new_ids: bool = False, client: httpx.Client | None = None, on_result=None) -> ReplayReport:
    """Post each delivery in order (or at `rate` per second); ids are kept unless `new_ids`.

    With `new_ids`, one recorded id maps to one new id, so a recorded duplicate stays a duplicate.
    `secrets` gives each endpoint's secret, or candidates tried in order while the receiver answers
    `invalid_signature` (nothing is stored on a 401, so a second try is harmless).
    """
    report = ReplayReport()
    renamed: dict[str, str] = {}
    own_client = client is None
    client = client or httpx.Client(timeout=30)
    interval = 1.0 / rate if rate else 0.0
    next_at = time.monotonic()
    try:
        for source, fixture in items:
            endpoint = fixture["endpoint"]
            recorded = delivery_id_of(fixture["headers"]) or new_delivery_id()
            delivery_id = renamed.setdefault(recorded, new_delivery_id()) if new_ids else recorded
            if interval:
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                next_at = max(next_at, time.monotonic()) + interval
            candidates = secrets[endpoint]
            for secret in [candidates] if isinstance(candidates, str) else candidates:
                headers = resign(fixture, secret, delivery_id)
                try:
                    response = client.post(f"{url.rstrip('/')}/webhooks/{endpoint}", headers=headers,
                                           content=fixture["body"].encode())
                    outcome, reason = classify(response)
                except (httpx.ConnectError, httpx.ConnectTimeout):  # nothing listens: every other one would fail too
                    from tools.cli_messages import unreachable

                    done = f" ({len(report.results)} of {len(items)} delivered before)" if report.results else ""
                    raise ConfigError(unreachable(url) + done) from None
                except httpx.HTTPError as exc:
                    outcome, reason = "rejected", f"{type(exc).__name__} (no answer)"
                if reason != "HTTP 401 invalid_signature":
                    break
            result = Result(source, endpoint, delivery_id, outcome, reason)
            report.results.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        if own_client:
            client.close()
    return report


def render_summary(report: ReplayReport, console) -> None:
    from rich.table import Table

    counts = report.counts
    table = Table(title="replay summary")
    table.add_column("outcome")
    table.add_column("deliveries", justify="right")
    for outcome in OUTCOMES:
        table.add_row(outcome, str(counts.get(outcome, 0)))
    table.add_row("total", str(len(report.results)), style="bold")
    console.print(table)
    if report.rejected:
        why = Table(title="rejected deliveries")
        why.add_column("delivery")
        why.add_column("id")
        why.add_column("reason")
        for r in report.rejected:
            why.add_row(r.source, r.delivery_id, r.reason)
        console.print(why)


def check_reachable(url: str) -> None:
    """Before the progress bar: nothing listening there is one clear error, not a column of failures."""
    from tools.cli_messages import unreachable

    try:
        httpx.get(f"{url.rstrip('/')}/healthz", timeout=10)
    except httpx.TransportError as exc:
        raise ConfigError(unreachable(url, "" if isinstance(exc, httpx.ConnectError) else type(exc).__name__)) \
            from None


def run_replay(paths: list[str], url: str, secrets: dict[str, str | list[str]], rate: float | None,
               new_ids: bool, endpoint: str | None = None) -> int:
    """The CLI: progress bar, summary table, exit code 1 when anything was rejected."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(width=None if sys.stdout.isatty() else 140)
    items = load(paths, endpoint)
    if not items:
        console.print("no deliveries found in " + " ".join(paths))
        return 1
    check_reachable(url)
    with Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("replay", total=len(items))
        report = replay(items, url, secrets, rate, new_ids, on_result=lambda _: progress.advance(task))
    render_summary(report, console)
    return 1 if report.rejected else 0


def endpoint_of(path: str | Path) -> str | None:
    """The endpoint a recorded delivery file was for (None for a raw body)."""
    try:
        data = json.loads(Path(path).read_bytes())
    except ValueError:
        return None
    return data["endpoint"] if is_fixture(data) and data["endpoint"] in ENDPOINTS else None


def sign_file(path: str | Path, secret: str, delivery_id: str | None = None, timestamp: int | None = None,
              prefix: str | None = None) -> tuple[dict[str, str], bytes]:
    """Headers for a fixture's body (keeping its id) or for a raw body file; returns (headers, body)."""
    raw = Path(path).read_bytes()
    body, recorded = raw, None
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("body"), str) and data.get("endpoint") in ENDPOINTS:
        body = data["body"].encode()
        recorded = delivery_id_of(data.get("headers") or {})
        prefix = prefix or header_prefix(data.get("headers") or {})
    return signature_headers(secret, delivery_id or recorded or new_delivery_id(), body, timestamp,
                             prefix=prefix or "svix"), body


def curl_lines(headers: dict[str, str]) -> str:
    """`-H 'name: value'` arguments, one per line, ready to paste into a curl command."""
    parts = [f"-H {shlex.quote(f'{name}: {value}')}" for name, value in headers.items()]
    return " \\\n".join(parts)
