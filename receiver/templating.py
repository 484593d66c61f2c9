"""The dashboard's Jinja2 templates (receiver/templates/, autoescape on) and the sections the live stream replaces."""

from __future__ import annotations

import html
import json
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, Undefined, select_autoescape
from markupsafe import Markup
from starlette.templating import Jinja2Templates

from lockhook.commands.store import Command
from receiver.dashboard_data import STATUSES, Filters, Overview

OVERVIEW_SECTIONS = ("summary", "commands", "locks", "deliveries")


def escaped(value) -> Markup:
    """Every `{{ value }}` passes here: None and missing values print nothing, text is escaped (quotes too)."""
    if value is None or isinstance(value, Undefined):
        return Markup("")
    if hasattr(value, "__html__"):  # a macro's output or other markup, already escaped
        return Markup(value)
    return Markup(html.escape(str(value), quote=True))


def details(entry: dict, *skip: str, skip_empty: bool = False) -> list[str]:
    """`key=value` for the fields of a free-form entry the page has no column for."""
    return [f"{k}={v}" for k, v in entry.items() if k not in skip and not (skip_empty and v in (None, ""))]


def environment() -> Environment:
    env = Environment(loader=PackageLoader("receiver", "templates"), autoescape=select_autoescape(["html"]),
                      finalize=escaped, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(query=urlencode, path=lambda s: quote(s, safe=""), json=json.dumps, details=details)
    env.globals.update(statuses=STATUSES)
    return env


templates = Jinja2Templates(env=environment())


def _section(name: str, **context) -> Markup:
    return Markup(templates.get_template(f"sections/{name}.html").render(**context))


def overview_sections(ov: Overview, filters: Filters) -> dict[str, Markup]:
    """Each section of the overview page, by the id of the element it fills."""
    return {name: _section(name, ov=ov, filters=filters) for name in OVERVIEW_SECTIONS}


def command_section(command: Command, timeline: list[dict]) -> Markup:
    return _section("command", command=command, timeline=timeline)


def overview_context(ov: Overview, filters: Filters) -> dict:
    query = urlencode({k: v for k, v in (("view", "overview"), ("device", filters.device),
                                         ("status", filters.status)) if v})
    return {"sections": overview_sections(ov, filters), "live": query}


def command_context(command: Command, timeline: list[dict]) -> dict:
    return {"command": command, "section": command_section(command, timeline),
            "live": urlencode({"view": "command", "id": command.command_id})}
