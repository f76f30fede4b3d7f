"""docker-compose.yml, the Dockerfiles and .env.example stay honest: every service, command, variable,
port, volume and file they name exists in the project. No container engine runs here, so the file is
checked, not run."""

from __future__ import annotations

import inspect
import json
import re
import shlex
import tomllib

import pytest
import yaml

from tests.conftest import REPO

COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = (REPO / ".env.example").read_text()
STUDIO = {"migrate", "web", "worker-io", "worker-gpu"}  # services that run `gad-studio`

# Variables the studio's Settings does not read, and who does.
EXTERNAL = {
    "POSTGRES_USER": "the postgres image creates this role",
    "POSTGRES_PASSWORD": "the postgres image sets this password",
    "POSTGRES_DB": "the postgres image creates this database",
    "HF_HOME": "huggingface_hub's cache root: where models are downloaded",
    "OPENAI_API_KEY": "the default api_key_env of a teacher/judge endpoint (gad/llm/api_client.py)",
    "GAD_WEB_PORT": "compose only: the web service's host port",
    "VLLM_PORT": "compose only: the vllm service's host port",
    "VLLM_GPU_ID": "compose only: the GPU reserved for the vllm service",
    "VLLM_MODEL": "the vllm service's command",
    "VLLM_API_KEY": "the vllm service's command",
    "VLLM_GPU_MEMORY_UTILIZATION": "the vllm service's command",
}
COMPOSE_ONLY = {"GAD_WEB_PORT", "VLLM_PORT", "VLLM_GPU_ID"}


def settings_aliases() -> set[str]:
    from app.settings import Settings

    return {f.alias for f in Settings.model_fields.values() if f.alias}


def interpolated(text: str) -> set[str]:
    """${NAME...} that compose substitutes ($${...} is an escaped literal for the container's shell)."""
    return set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def env_keys() -> dict[str, set[str]]:
    return {name: set(s.get("environment") or {}) for name, s in SERVICES.items()}


def documented() -> set[str]:
    return set(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=", ENV_EXAMPLE, flags=re.M))


def dockerfile(service: dict) -> str:
    build = service["build"]
    return (REPO / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).read_text()


def entrypoint(service: dict) -> list[str]:
    if "entrypoint" in service:
        return service["entrypoint"]
    lines = [ln for ln in dockerfile(service).splitlines() if ln.startswith("ENTRYPOINT")]
    return json.loads(lines[-1].split(None, 1)[1])


def test_the_services_of_a_gpu_server():
    assert set(SERVICES) == {"postgres", "redis", "migrate", "web", "worker-io", "worker-gpu", "vllm"}
    assert SERVICES["vllm"]["profiles"] == ["vllm"]  # optional
    for name, service in SERVICES.items():
        assert "image" in service, name


def test_every_variable_is_documented_and_read_by_someone():
    names = interpolated(COMPOSE_TEXT) | set().union(*env_keys().values())
    aliases = settings_aliases()
    docs = documented()
    for name in sorted(names):
        assert name in docs, f"{name} is not documented in .env.example"
        assert name in aliases or name in EXTERNAL, f"{name}: neither a Settings variable nor a known external one"
    # every studio setting can be configured, and everything documented is used somewhere
    assert aliases <= docs, f"undocumented settings: {aliases - docs}"
    assert docs <= names | aliases, f".env.example documents unused variables: {docs - names - aliases}"


def test_external_variables_are_read_where_the_list_says():
    import huggingface_hub.constants

    from gad.llm.api_client import Endpoint

    for name in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        assert name in env_keys()["postgres"]
    assert "HF_HOME" in inspect.getsource(huggingface_hub.constants)
    assert Endpoint.model_fields["api_key_env"].default == "OPENAI_API_KEY"
    vllm_command = " ".join(SERVICES["vllm"]["command"])
    for name in ("VLLM_MODEL", "VLLM_API_KEY", "VLLM_GPU_MEMORY_UTILIZATION"):
        assert f"$${name}" in vllm_command and name in env_keys()["vllm"]
    for name in COMPOSE_ONLY:  # interpolated by compose, never handed to a process
        assert name in interpolated(COMPOSE_TEXT) and not any(name in keys for keys in env_keys().values())


def test_studio_commands_are_real_subcommands():
    from app.cli import build_parser
    from app.enums import Queue
    from app.queue import TASKS

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    served = set()
    for name in sorted(STUDIO):
        service = SERVICES[name]
        assert entrypoint(service) == ["gad-studio"] and "gad-studio" in pyproject["project"]["scripts"]
        ns = build_parser().parse_args(service["command"])  # exits (fails the test) on an unknown flag
        assert ns.command in {"serve", "db", "worker"}, name
        if ns.command == "worker":
            queues = set(ns.queues.split(","))
            assert queues <= {q.value for q in Queue}, name
            served |= queues
    assert {t.queue.value for t in TASKS.values()} <= served, "a task's queue has no worker"
    assert build_parser().parse_args(SERVICES["migrate"]["command"]).action == "upgrade"
    assert entrypoint(SERVICES["vllm"]) == ["/bin/sh", "-c"]


def _vllm_argv() -> list[str]:
    script = SERVICES["vllm"]["command"][0]
    tokens = shlex.split(script.split("exec ", 1)[1].replace("$$", "$"))
    assert tokens[:2] == ["vllm", "serve"]
    return tokens


def test_vllm_service_serves_with_a_key_and_lora():
    argv = _vllm_argv()
    assert "--enable-lora" in argv and argv[argv.index("--api-key") + 1] == "$VLLM_API_KEY"
    script = SERVICES["vllm"]["command"][0]
    assert script.startswith('test -n "$$VLLM_API_KEY"')  # refuses to start without a key


def test_profile_services_need_no_required_variables():
    """Compose interpolates every service whatever the active profiles, so ${X:?} in an optional
    service would stop a plain `docker compose up`."""
    text = yaml.safe_dump(SERVICES["vllm"])
    assert not re.search(r"(?<!\$)\$\{[A-Za-z0-9_]+:?\?", text)


def _container_port(mapping: str) -> int:
    return int(mapping.rsplit(":", 1)[1])


def test_ports_match_the_commands():
    from app.cli import build_parser

    web = build_parser().parse_args(SERVICES["web"]["command"])
    assert [_container_port(p) for p in SERVICES["web"]["ports"]] == [web.port]
    assert web.host == "0.0.0.0"  # reachable from outside the container
    argv = _vllm_argv()
    assert [_container_port(p) for p in SERVICES["vllm"]["ports"]] == [int(argv[argv.index("--port") + 1])]
    published = [p.split(":")[0] for s in SERVICES.values() for p in s.get("ports", [])]
    assert len(published) == len(set(published)), "two services publish the same host port"


def test_volumes_are_declared_and_paths_are_mounted():
    declared = set(COMPOSE["volumes"])
    used = set()
    for name, service in SERVICES.items():
        targets = {}
        for v in service.get("volumes", []):
            source, target = v.split(":")[:2]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
            targets[target] = source
        env = service.get("environment") or {}
        for var in ("GAD_DATA_DIR", "HF_HOME"):
            if var in env:
                assert env[var] in targets, f"{name}: {var}={env[var]} is not a mounted volume"
    assert used == declared, f"declared but unused: {declared - used}"
    for name in STUDIO:
        env = SERVICES[name]["environment"]
        assert env["GAD_DATA_DIR"] == "/data" and env["HF_HOME"] == "/models"


def test_dockerfiles_exist_and_copy_what_exists():
    files = {SERVICES[s]["build"].get("dockerfile", "Dockerfile") for s in SERVICES if "build" in SERVICES[s]}
    assert files == {"Dockerfile", "Dockerfile.cuda"}
    for f in files:
        for line in (REPO / f).read_text().splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    assert (REPO / source).exists(), f"{f}: COPY {source} does not exist"
    cuda = (REPO / "Dockerfile.cuda").read_text()
    assert re.search(r'"vllm==([\d.]+)"', cuda).group(1) in (REPO / "pyproject.toml").read_text()
    assert "configs" in (REPO / "Dockerfile").read_text()  # the accelerate configs ship in the image


@pytest.mark.parametrize("name", ["worker-gpu", "vllm"])
def test_gpu_services_reserve_gpus(name):
    devices = SERVICES[name]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "cuda" in SERVICES[name]["build"]["dockerfile"].lower()


def test_startup_order():
    pg = SERVICES["postgres"]["healthcheck"]
    assert "pg_isready" in " ".join(pg["test"])
    assert SERVICES["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert SERVICES["migrate"]["restart"] == "no"
    for name in ("web", "worker-io", "worker-gpu"):
        assert SERVICES[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        assert "redis" in SERVICES[name]["depends_on"], name
    env = SERVICES["web"]["environment"]
    assert env["DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:5432/" in env["DATABASE_URL"]
    assert env["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
