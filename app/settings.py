"""All studio settings, from environment variables (one place; built by a factory, never at import).

| variable | default | meaning |
| --- | --- | --- |
| GAD_DATA_DIR | ./data | folder for the embedded database, broker, runs and the secret key |
| DATABASE_URL | sqlite:///$GAD_DATA_DIR/studio.db | SQLAlchemy URL (postgresql+psycopg://... in production) |
| CELERY_BROKER_URL | sqla+sqlite:///$GAD_DATA_DIR/broker.db | redis://host:6379/0 in production |
| GAD_SECRET_KEY | generated in $GAD_DATA_DIR/secret.key | encrypts stored API keys (Fernet, 32 url-safe base64 bytes) |
| GAD_HEARTBEAT_SECONDS | 5 | how often a running job writes its heartbeat |
| GAD_HEARTBEAT_TIMEOUT | 60 | a running job silent this long is marked interrupted |
| GAD_VISIBILITY_TIMEOUT | 172800 | Redis redelivery delay; longer than any job (48 h) |
| GAD_ALLOW_REMOTE_CODE | false | admins only: allow trust_remote_code for hub models |
| GAD_MAX_UPLOAD_MB | 200 | largest prompt-set upload (a .gz upload may expand to 10x this) |
| GAD_MAX_UPLOAD_ROWS | 200000 | most records one prompt-set upload may hold |
| GAD_ENDPOINT_KEY_ENVS | *_API_KEY | environment variables an endpoint's key may name (comma-separated globs) |
| GAD_ENDPOINT_ALLOW_LINK_LOCAL | false | let endpoints (and the connection test) reach 169.254.0.0/16, fe80::/10 |
| GAD_SERVE_MEMORY_MB | 4096 | memory budget of the chat server's loaded-model cache |
| GAD_BASE_MODELS | (none) | comma-separated model folders or hub ids offered for chat beside the runs' students |
| GAD_PROCESSES_PER_RUN | 0 | processes a GPU worker trains one run with (0: one per visible GPU; 1: in the worker) |
| GAD_LAUNCH_STRATEGY | ddp | how a run spans processes: ddp, zero2, zero3, fsdp (configs/accelerate/) |
| GAD_LAUNCH_CPU | false | run the group on CPU processes (tests, CI) |
| GAD_COOKIE_SECURE | auto | mark the session cookie Secure: true behind a TLS proxy; auto: when the request is https |
| GAD_WEB_THREADS | 40 | request handler threads of the web server; the database pool is sized against it |
| GAD_MAX_PROMPT_TOKENS | 8192 | longest /v1 prompt, in tokens (also capped by the model's context) |
| GAD_MODEL_QUEUE | 4 | /v1 requests that may wait for one local model's turn; more get 429 at once |
| GAD_LEASE_SECONDS | 900 | how long an annotation item stays reserved for the annotator it was handed to |
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    data_dir: Path = Field(Path("data"), alias="GAD_DATA_DIR", description="Folder for embedded data and runs.")
    database_url: str | None = Field(None, alias="DATABASE_URL", description="SQLAlchemy database URL.")
    broker_url: str | None = Field(None, alias="CELERY_BROKER_URL", description="Celery broker URL.")
    secret_key: str | None = Field(None, alias="GAD_SECRET_KEY", description="Key that encrypts stored API keys.")
    heartbeat_seconds: float = Field(5.0, alias="GAD_HEARTBEAT_SECONDS", gt=0)
    heartbeat_timeout: float = Field(60.0, alias="GAD_HEARTBEAT_TIMEOUT", gt=0)
    visibility_timeout: int = Field(172800, alias="GAD_VISIBILITY_TIMEOUT", gt=0)
    allow_remote_code: bool = Field(False, alias="GAD_ALLOW_REMOTE_CODE")
    max_upload_mb: float = Field(200.0, alias="GAD_MAX_UPLOAD_MB", gt=0)
    max_upload_rows: int = Field(200_000, alias="GAD_MAX_UPLOAD_ROWS", gt=0)
    endpoint_key_envs: str = Field("*_API_KEY", alias="GAD_ENDPOINT_KEY_ENVS")
    endpoint_allow_link_local: bool = Field(False, alias="GAD_ENDPOINT_ALLOW_LINK_LOCAL")
    serve_memory_mb: float = Field(4096.0, alias="GAD_SERVE_MEMORY_MB", gt=0)
    base_models_csv: str = Field("", alias="GAD_BASE_MODELS")
    processes_per_run: int = Field(0, alias="GAD_PROCESSES_PER_RUN", ge=0)
    launch_strategy: Literal["ddp", "zero2", "zero3", "fsdp"] = Field("ddp", alias="GAD_LAUNCH_STRATEGY")
    launch_cpu: bool = Field(False, alias="GAD_LAUNCH_CPU")
    cookie_secure: Literal["auto", "true", "false"] = Field("auto", alias="GAD_COOKIE_SECURE")
    web_threads: int = Field(40, alias="GAD_WEB_THREADS", ge=1, le=1000)
    max_prompt_tokens: int = Field(8192, alias="GAD_MAX_PROMPT_TOKENS", ge=16)
    model_queue: int = Field(4, alias="GAD_MODEL_QUEUE", ge=0, le=1000)
    lease_seconds: float = Field(900.0, alias="GAD_LEASE_SECONDS", gt=0)

    def run_processes(self) -> int:
        """How many processes one run trains with on this worker (1: in the worker process itself)."""
        if self.processes_per_run:
            return self.processes_per_run
        import torch

        return max(1, torch.cuda.device_count())

    @property
    def base_models(self) -> list[str]:
        return [m.strip() for m in self.base_models_csv.split(",") if m.strip()]

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'studio.db').resolve()}"

    @property
    def celery_broker(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{(self.data_dir / 'broker.db').resolve()}"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    def fernet_key(self) -> bytes:
        """The configured key, or one generated once into the data folder (mode 0600). Created with
        O_EXCL: a web server and a worker starting together agree on one key."""
        if self.secret_key:
            return self.secret_key.encode()
        cached = self.__dict__.get("_fernet_key")
        if cached:
            return cached
        path = self.data_dir / "secret.key"
        if not path.exists():
            import os

            from cryptography.fernet import Fernet

            self.data_dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # the other process won the race: read its key
                pass
            else:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(Fernet.generate_key())
        key = path.read_bytes().strip()
        if key:  # an empty file is the other process between create and write: read again next time
            self.__dict__["_fernet_key"] = key
        return key


def get_settings(**overrides) -> Settings:
    return Settings(**overrides)
