"""deploy/: the docker-compose stack and the Dockerfiles, checked offline (no Docker engine needed).

The compose file is validated against the Compose Specification's JSON schema (the copy that the
check-jsonschema package vendors), before and after variable interpolation, and then against this project's
rules: one database per service, each service migrated before it starts, health checks everywhere, only the
gateway published, no secret written in the file. The Dockerfiles are parsed as text.
"""

from __future__ import annotations

import copy
import hashlib
import http.server
import importlib
import json
import re
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from tools.stack import webhook_events

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / "env.example"
INITDB_SCRIPT = DEPLOY / "postgres" / "initdb" / "10-service-databases.sh"

SERVICES = ("campaigns", "pledges", "refunds")
APP_COMPONENTS = (*SERVICES, "gateway")
# One Dockerfile; each compose service builds the target of the same name.
DOCKERFILE = DEPLOY / "Dockerfile"
IMAGES = (*APP_COMPONENTS, "stripe-local")
FACTORIES = {**{s: f"services.{s}.app:create_app" for s in SERVICES}, "gateway": "gateway.app:create_app"}
SECRET_NAME = re.compile(r"(SECRET|KEY|PASSWORD|TOKEN)$")
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}; $$ is a literal dollar.
VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
REQUIRED_VARIABLE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*):\?[^}]+\}$")
COMPOSE_SPEC_PACKAGE = "check-jsonschema==0.39.0"


# ---- loading ------------------------------------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    """The Compose Specification schema (github.com/compose-spec/compose-spec, schema/compose-spec.json), as
    vendored, with its licence and checksum, by the check-jsonschema package (its `vendor.compose-spec`)."""
    try:
        vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    except ModuleNotFoundError:
        pytest.fail(f"{COMPOSE_SPEC_PACKAGE} is not installed: the dev dependency that carries the schema")
    raw = (vendor / "compose-spec.json").read_bytes()
    expected = (vendor / "sha256" / "compose-spec.sha256").read_text().strip()
    assert hashlib.sha256(raw).hexdigest() == expected, "the vendored compose-spec.json is corrupt"
    schema = json.loads(raw)
    jsonschema.validators.validator_for(schema).check_schema(schema)
    return schema


def validation_errors(schema: Mapping[str, Any], document: Any) -> list[str]:
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    ]


def example_environment() -> dict[str, str]:
    """Every variable named in env.example, each given a distinct placeholder value."""
    names = re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.MULTILINE)
    return {name: f"test-{name.lower().replace('_', '-')}-0123456789abcdef0123456789abcdef" for name in names}


class MissingVariable(LookupError):
    pass


def interpolate(value: Any, environment: Mapping[str, str]) -> Any:
    """Compose's interpolation (the subset this file uses), applied to every string of a loaded document."""
    if isinstance(value, dict):
        return {key: interpolate(item, environment) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environment) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.groups()
        current = environment.get(name)
        unset = current is None or (operator is not None and operator.startswith(":") and current == "")
        if operator in (":?", "?") and unset:
            raise MissingVariable(f"{name}: {argument}")
        if operator in (":-", "-") and unset:
            return argument
        return current or ""

    return VARIABLE.sub(substitute, value)


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def healthcheck_code(service: Mapping[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    assert isinstance(test, list), "use the exec form: no shell in the check"
    assert test[:3] == ["CMD", "python", "-c"], f"a health check runs python (slim images have no curl): {test}"
    return test[3]


# ---- the Compose Specification --------------------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_specification(
    compose: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    assert validation_errors(compose_schema, compose) == []


def test_compose_file_is_valid_once_interpolated(compose: dict[str, Any], compose_schema: dict[str, Any]) -> None:
    resolved = interpolate(compose, example_environment())
    assert validation_errors(compose_schema, resolved) == []
    assert "${" not in json.dumps(resolved)


def _break_depends_on(compose: dict[str, Any]) -> None:
    compose["services"]["campaigns"]["depends_on"]["migrate-campaigns"]["condition"] = "service_finished"


def _break_healthcheck(compose: dict[str, Any]) -> None:
    compose["services"]["pledges"]["healthcheck"]["intervall"] = "5s"


def _break_ports(compose: dict[str, Any]) -> None:
    compose["services"]["gateway"]["ports"] = [{"target": 8000, "protocol": 5}]


def _break_network(compose: dict[str, Any]) -> None:
    compose["networks"]["data"]["intrenal"] = True


@pytest.mark.parametrize(
    ("breaks", "where"),
    [
        (_break_depends_on, "services/campaigns/depends_on"),
        (_break_healthcheck, "services/pledges/healthcheck"),
        (_break_ports, "services/gateway/ports"),
        (_break_network, "networks/data"),
    ],
)
def test_the_schema_check_rejects_a_broken_compose_file(
    compose: dict[str, Any], compose_schema: dict[str, Any], breaks: Any, where: str
) -> None:
    broken = copy.deepcopy(compose)
    breaks(broken)
    errors = validation_errors(compose_schema, broken)
    assert any(error.startswith(where) for error in errors), errors


def test_every_required_variable_is_in_env_example(compose: dict[str, Any]) -> None:
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?", json.dumps(compose)))
    documented = set(example_environment())
    assert required == documented, f"missing from env.example: {required - documented}; unused: {documented - required}"
    for name in sorted(required):
        with pytest.raises(MissingVariable, match=name):
            interpolate(compose, {k: v for k, v in example_environment().items() if k != name})
        with pytest.raises(MissingVariable, match=name):
            interpolate(compose, {**example_environment(), name: ""})


# ---- the stack's rules ----------------------------------------------------------------------------------------


def test_every_long_running_container_has_a_health_check(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name.startswith("migrate-"):
            continue
        healthcheck = service.get("healthcheck")
        assert healthcheck, f"{name} has no health check"
        assert healthcheck.get("test"), f"{name} has no health check"
        assert not healthcheck.get("disable"), f"{name}'s health check is disabled"
    for name in SERVICES:
        code = healthcheck_code(compose["services"][name])
        assert "http://127.0.0.1:8000/readyz" in code, f"{name} must be ready only when its database answers"
    assert "/healthz" in healthcheck_code(compose["services"]["gateway"])


def test_migrations_are_one_shot_containers(compose: dict[str, Any]) -> None:
    migrations = {name for name in compose["services"] if name.startswith("migrate-")}
    assert migrations == {f"migrate-{name}" for name in SERVICES}
    for name in SERVICES:
        migration = compose["services"][f"migrate-{name}"]
        assert migration["command"] == ["python", "-m", "tools.migrate", name]
        assert migration.get("restart") == "no"
        assert migration["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "ports" not in migration


def test_each_service_starts_only_after_its_migration_succeeded(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in SERVICES:
        depends_on = services[name].get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions (the long form)"
        assert depends_on.get(f"migrate-{name}", {}).get("condition") == "service_completed_successfully", name
        # The migration runs the same image, with the same settings, on the same database.
        migration = services[f"migrate-{name}"]
        assert migration["image"] == services[name]["image"]
        assert migration["build"] == services[name]["build"]
        assert environment_of(migration) == environment_of(services[name])
    for name in SERVICES:
        assert services["gateway"]["depends_on"][name]["condition"] == "service_healthy"


def test_postgres_is_healthy_only_when_reachable_over_tcp(compose: dict[str, Any]) -> None:
    # While the image runs its init scripts, the server listens on its Unix socket only.
    test = compose["services"]["postgres"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"]
    assert "--host=127.0.0.1" in test


def test_only_the_gateway_publishes_a_port(compose: dict[str, Any]) -> None:
    published = {name for name, service in compose["services"].items() if service.get("ports")}
    assert published == {"gateway"}
    for name, service in compose["services"].items():
        assert service.get("network_mode") != "host", name
    assert compose["services"]["gateway"]["ports"] == ["${GATEWAY_PORT:-8000}:8000"]
    # The database sits on an internal network that the gateway is not on.
    assert compose["networks"]["data"]["internal"] is True
    assert compose["services"]["postgres"]["networks"] == ["data"]
    assert "data" not in compose["services"]["gateway"]["networks"]


def test_no_secret_is_written_in_the_compose_file(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert "env_file" not in service, f"{name}: secrets come from variables, not from a committed file"
        for key, value in environment_of(service).items():
            if SECRET_NAME.search(key):
                assert REQUIRED_VARIABLE.fullmatch(value), f"{name}: {key} must be ${{VAR:?message}}, not {value!r}"
            if key.endswith("DATABASE_URL"):
                credentials = re.fullmatch(r"postgresql\+asyncpg://(\w+):(\$\{[^}]+\})@postgres:5432/\w+", value)
                assert credentials, f"{name}: {key} must take its password from a variable, not {value!r}"
                assert REQUIRED_VARIABLE.fullmatch(credentials.group(2)), f"{name}: {key}"
    # The same holds with every variable set: nothing secret survives that did not come from the environment.
    environment = example_environment()
    resolved = interpolate(compose, environment)
    for name, service in resolved["services"].items():
        for key, value in environment_of(service).items():
            if SECRET_NAME.search(key):
                assert value in environment.values(), f"{name}: {key}"


def test_each_service_has_its_own_database(compose: dict[str, Any]) -> None:
    resolved = interpolate(compose, example_environment())
    seen: dict[tuple[str, str], str] = {}
    for name in SERVICES:
        environment = environment_of(resolved["services"][name])
        url = urlsplit(environment[f"{name.upper()}_DATABASE_URL"])
        assert url.scheme == "postgresql+asyncpg"
        assert url.hostname == "postgres"
        assert url.port == 5432
        assert url.path == f"/{name}", f"{name} must use the database named after it"
        assert url.username == name, f"{name} must log in as its own role"
        assert url.password == example_environment()[f"{name.upper()}_DB_PASSWORD"]
        assert (url.username, url.path) not in seen
        seen[(url.username, url.path)] = name
        # No service is handed another service's database.
        others = [k for k in environment if k.endswith("DATABASE_URL") and k != f"{name.upper()}_DATABASE_URL"]
        assert others == [], f"{name} gets {others}"
        assert all(key.startswith(f"{name.upper()}_") for key in environment), f"{name}: wrong prefix"
    assert {k for k in environment_of(compose["services"]["gateway"]) if "DATABASE" in k} == set()


def test_the_init_script_creates_each_database_and_role(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    mounts = [v.split(":") for v in postgres["volumes"]]
    sources = [source for source, target, *_ in mounts if target == "/docker-entrypoint-initdb.d"]
    assert len(sources) == 1
    assert (COMPOSE_FILE.parent / sources[0]).resolve() == INITDB_SCRIPT.parent
    script = INITDB_SCRIPT.read_text()
    assert INITDB_SCRIPT.stat().st_mode & 0o111, "the postgres image sources, not runs, a non-executable script"
    assert re.search(r"^for service in campaigns pledges refunds; do$", script, flags=re.MULTILINE)
    assert 'CREATE DATABASE :"name" OWNER :"name";' in script
    for name in SERVICES:
        assert environment_of(postgres)[f"{name.upper()}_DB_PASSWORD"] == (
            f"${{{name.upper()}_DB_PASSWORD:?set {name.upper()}_DB_PASSWORD (deploy/README.md)}}"
        )
    result = subprocess.run(["bash", "-n", str(INITDB_SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_components_reach_each_other_by_service_name(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in SERVICES:
        environment = environment_of(services[name])
        for other in SERVICES:
            assert environment[f"{name.upper()}_{other.upper()}_URL"] == f"http://{other}:8000"
        assert environment[f"{name.upper()}_ENVIRONMENT"] == "production"
    gateway = environment_of(services["gateway"])
    assert gateway["GATEWAY_ENVIRONMENT"] == "production"
    for other in SERVICES:
        assert gateway[f"GATEWAY_{other.upper()}_URL"] == f"http://{other}:8000"


def test_production_settings_accept_the_compose_environment(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each component's own Settings class loads what compose hands it, in production mode."""
    resolved = interpolate(compose, example_environment())
    for name in APP_COMPONENTS:
        environment = environment_of(resolved["services"][name])
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        module = "gateway.config" if name == "gateway" else f"services.{name}.config"
        settings = importlib.import_module(module).Settings()
        assert settings.environment == "production"
        assert settings.jwt_secret.get_secret_value() == example_environment()["JWT_SECRET"]
        assert settings.service_token_secret.get_secret_value() == example_environment()["SERVICE_TOKEN_SECRET"]
        if name != "gateway":
            assert settings.database_url == environment[f"{name.upper()}_DATABASE_URL"]
        else:
            assert settings.service_urls() == {s: f"http://{s}:8000" for s in SERVICES}


def test_the_dev_profile_holds_only_the_local_stripe_server(compose: dict[str, Any]) -> None:
    profiled = {name for name, service in compose["services"].items() if service.get("profiles")}
    assert profiled == {"stripe-local"}
    assert compose["services"]["stripe-local"]["profiles"] == ["dev"]
    resolved = interpolate(compose, example_environment())
    endpoints = json.loads(environment_of(resolved["services"]["stripe-local"])["STRIPE_LOCAL_WEBHOOK_ENDPOINTS"])
    assert {(e["url"], e["secret"]) for e in endpoints} == {
        (f"http://gateway:8000/v1/webhooks/stripe/{s}", example_environment()[f"{s.upper()}_STRIPE_WEBHOOK_SECRET"])
        for s in ("pledges", "refunds")
    }
    # Each endpoint subscribes to the events its service handles, as tools.stack sets them up, not to "*".
    assert {e["url"].rsplit("/", 1)[1]: e["enabled_events"] for e in endpoints} == webhook_events()


# ---- health checks, run for real against a local HTTP server ----------------------------------------------------


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Answer)
    server.status = 200  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def run_check(code: str, port: int) -> int:
    assert code.count("8000") == 1
    result = subprocess.run([sys.executable, "-c", code.replace("8000", str(port))], capture_output=True, timeout=30)
    return result.returncode


@pytest.mark.parametrize(
    ("component", "expected"),
    [
        ("campaigns", {200: 0, 503: 1}),
        ("pledges", {200: 0, 503: 1}),
        ("refunds", {200: 0, 503: 1}),
        # The gateway answers 503 ("degraded") when a service is not ready: it is alive all the same.
        ("gateway", {200: 0, 503: 0, 500: 1}),
    ],
)
def test_health_checks_pass_and_fail_on_the_right_answers(
    compose: dict[str, Any], http_server: http.server.HTTPServer, component: str, expected: dict[int, int]
) -> None:
    code = healthcheck_code(compose["services"][component])
    port = http_server.server_address[1]
    for status, exit_code in expected.items():
        http_server.status = status  # type: ignore[attr-defined]
        assert run_check(code, port) == exit_code, (component, status)
    # Nothing listening: unhealthy.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    assert run_check(code, closed_port) != 0


def test_the_images_health_checks_match_the_compose_ones(compose: dict[str, Any]) -> None:
    for component in APP_COMPONENTS:
        healthcheck = json.loads(image_stage(component)["HEALTHCHECK"][-1].split(" CMD ", 1)[1])
        assert healthcheck == compose["services"][component]["healthcheck"]["test"][1:], component


# ---- Dockerfiles ----------------------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def parse_dockerfile() -> list[tuple[str, str]]:
    assert DOCKERFILE.is_file(), f"{DOCKERFILE} is missing"
    return dockerfile_instructions(DOCKERFILE.read_text())


def stages() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Stage name -> (what it is built FROM, its own instructions)."""
    found: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, arguments in parse_dockerfile():
        if keyword == "FROM":
            base, _, name = arguments.partition(" AS ")
            assert name, f"every stage is named: FROM {arguments}"
            current = []
            found[name.strip()] = (base.strip(), current)
        elif found:
            current.append((keyword, arguments))
    return found


def stage_chain(target: str) -> list[str]:
    """The target and the stages it builds on, the base first."""
    known = stages()
    assert target in known, f"no stage named {target} in {DOCKERFILE}"
    chain = [target]
    while known[chain[0]][0] in known:
        chain.insert(0, known[chain[0]][0])
    return chain


def image_stage(target: str) -> dict[str, list[str]]:
    """Everything the image of ``target`` is made of, inherited stages first: keyword -> arguments."""
    known = stages()
    merged: dict[str, list[str]] = {}
    for name in stage_chain(target):
        for keyword, arguments in known[name][1]:
            merged.setdefault(keyword, []).append(arguments)
    return merged


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list), "use the exec form (a JSON list)"
    assert all(isinstance(v, str) for v in value)
    return value


@pytest.mark.parametrize("component", APP_COMPONENTS)
def test_each_image_starts_its_own_factory(component: str) -> None:
    stage = image_stage(component)
    assert "ENTRYPOINT" not in stage, "compose overrides the command for migrations: keep it in CMD"
    command = exec_form(stage["CMD"][-1])
    assert command[:3] == ["uvicorn", "--factory", FACTORIES[component]]
    options = dict(zip(command[3::2], command[4::2], strict=False))
    assert options["--host"] == "0.0.0.0"
    assert options["--port"] == "8000"
    assert options["--loop"] == "uvloop"
    assert options["--http"] == "httptools"
    assert "--no-access-log" in command
    assert stage["EXPOSE"][-1] == "8000"
    module, _, attribute = FACTORIES[component].partition(":")
    assert callable(getattr(importlib.import_module(module), attribute))


def test_the_stripe_local_image_runs_the_local_server() -> None:
    stage = image_stage("stripe-local")
    command = exec_form(stage["CMD"][-1])
    expected = "python -m stripe_local --host 0.0.0.0 --port 12111 --db /data/stripe.sqlite3"
    assert command == expected.split()


@pytest.mark.parametrize("component", IMAGES)
def test_each_image_runs_as_a_non_root_user_without_build_tools(component: str) -> None:
    instructions = parse_dockerfile()
    stage = image_stage(component)
    user = stage.get("USER", [""])[-1]
    assert user, f"{component}: the final stage sets no USER (it would run as root)"
    assert user.split(":")[0] not in ("root", "0"), f"{component} runs as {user}"
    assert re.fullmatch(r"\d+:\d+", user), "a numeric uid:gid lets Kubernetes check runAsNonRoot"
    # The final stage copies the virtual environment from the build stage and installs nothing itself.
    assert any(arguments.startswith("--from=build /opt/venv") for arguments in stage["COPY"])
    for arguments in stage.get("RUN", []):
        assert not re.search(r"\b(apt-get|apt|pip|gcc|make|build-essential)\b", arguments), arguments
    known = stages()
    assert known[stage_chain(component)[0]][0] == "${PYTHON_IMAGE}"  # the slim base, never another image
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim-bookworm") in instructions
    for keyword, arguments in instructions:
        if keyword in ("ENV", "ARG"):
            assert not re.search(r"(SECRET|PASSWORD|API_KEY|TOKEN)", arguments), f"{component}: {arguments}"


def test_every_image_builds_on_the_one_runtime_stage() -> None:
    for component in IMAGES:
        chain = stage_chain(component)
        assert chain[0] == "runtime", f"{component} is built on {chain[0]}, not on the shared runtime stage"
        assert "build" not in chain, f"{component} would ship the build stage (sources, pip)"
    assert stages()["runtime"][0] == stages()["build"][0] == "${PYTHON_IMAGE}"


def test_the_images_hold_every_package_the_project_installs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {
        arguments.split()[0]
        for keyword, arguments in parse_dockerfile()
        if keyword == "COPY" and not arguments.startswith("--")
    }
    assert packages <= copied, f"not copied into the image: {packages - copied}"
    assert {"pyproject.toml", "constraints.txt"} <= {
        name for keyword, arguments in parse_dockerfile() if keyword == "COPY" for name in arguments.split()
    }


def test_compose_builds_each_component_from_its_target(compose: dict[str, Any]) -> None:
    for component in IMAGES:
        build = compose["services"][component]["build"]
        assert (COMPOSE_FILE.parent / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE
        assert build["target"] == component
        assert component in stages()
        assert compose["services"][component]["image"] == f"crowdfund/{component}:${{CROWDFUND_TAG:-latest}}"


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_images() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "data", "**/.env", "**/__pycache__", "**/tests"} <= patterns
    for needed in ("pyproject.toml", "constraints.txt", "shared", "services", "gateway", "stripe_local", "tools"):
        assert needed not in patterns
        assert f"/{needed}" not in patterns
