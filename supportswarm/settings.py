"""Configuration, read once from the environment and passed explicitly everywhere else."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "supportswarm"


def _env(name: str, text: str) -> dict[str, str]:
    return {"env": name, "help": text}


@dataclass(frozen=True, kw_only=True)
class Settings:
    database_url: str | None = field(
        default=None,
        metadata=_env(
            "DATABASE_URL",
            "PostgreSQL with the `vector` extension. Unset: an embedded server in the data folder.",
        ),
    )
    redis_url: str | None = field(
        default=None,
        metadata=_env(
            "REDIS_URL",
            "Redis for pub/sub, presence, rate limits and arq jobs. Unset: all in-process.",
        ),
    )
    redis_namespace: str = field(
        default="supportswarm:",
        metadata=_env(
            "SUPPORTSWARM_REDIS_NAMESPACE",
            "prefix of pub/sub channels, presence keys, the arq job queue and job ids; deployments sharing one "
            "Redis need distinct ones.",
        ),
    )
    secret_key: str = field(
        default="",
        repr=False,  # never in a log line or a traceback's locals
        metadata=_env(
            "SECRET_KEY",
            "signs session cookies and CSRF tokens. Required with DATABASE_URL or REDIS_URL.",
        ),
    )
    data_dir: Path = field(
        default_factory=_default_data_dir,
        metadata=_env(
            "SUPPORTSWARM_DATA_DIR",
            "where the embedded database and the generated secret live.",
        ),
    )
    model_path: str | None = field(
        default=None,
        metadata=_env(
            "SUPPORTSWARM_MODEL_PATH",
            "a sentence-transformers model folder. Unset: the bundled all-MiniLM-L6-v2.",
        ),
    )
    embed_threads: int | None = field(
        default=None,
        metadata=_env(
            "SUPPORTSWARM_EMBED_THREADS",
            "torch threads for encoding. Unset: chosen from the free cores.",
        ),
    )
    answer_threshold: float | None = field(
        default=None,
        metadata=_env(
            "SUPPORTSWARM_ANSWER_THRESHOLD",
            "confidence above which an existing answer is offered. Unset: calibrated on BANKING77 (bench/README.md).",
        ),
    )
    swarm_urgent_tags: tuple[str, ...] = field(
        default=("urgent", "outage"),
        metadata=_env(
            "SUPPORTSWARM_SWARM_URGENT_TAGS",
            "comma-separated tags that always open a swarm.",
        ),
    )
    expert_reputation: int = field(
        default=200,
        metadata=_env(
            "SUPPORTSWARM_EXPERT_REPUTATION",
            "reputation from which a customer may join any swarm.",
        ),
    )
    trusted_reputation: int = field(
        default=100,
        metadata=_env(
            "SUPPORTSWARM_TRUSTED_REPUTATION",
            "reputation from which a user may edit community-wiki answers.",
        ),
    )
    sla_minutes: int = field(
        default=30,
        metadata=_env(
            "SUPPORTSWARM_SLA_MINUTES",
            "an unanswered question older than this gets a swarm and invitations.",
        ),
    )
    flags_to_hide: int = field(
        default=3,
        metadata=_env(
            "SUPPORTSWARM_FLAGS_TO_HIDE",
            "distinct users whose spam or rude flags hide a post until a moderator reviews it.",
        ),
    )
    allowed_origins: tuple[str, ...] = field(
        default=(),
        metadata=_env(
            "SUPPORTSWARM_ALLOWED_ORIGINS",
            "extra Origins allowed on websockets (comma-separated); the request's own host is always allowed.",
        ),
    )
    rate_limits: bool = field(
        default=True,
        metadata=_env(
            "SUPPORTSWARM_RATE_LIMITS",
            "set to 0 to disable request rate limits (load tests).",
        ),
    )
    json_logs: bool = field(
        default=False,
        metadata=_env(
            "SUPPORTSWARM_JSON_LOGS",
            "set to 1 for one JSON object per log line.",
        ),
    )
    debug: bool = field(default=False, metadata=_env("SUPPORTSWARM_DEBUG", "set to 1 for tracebacks in responses."))
    public_url: str | None = field(
        default=None,
        metadata=_env(
            "SUPPORTSWARM_PUBLIC_URL",
            "the site's address as users reach it (`https://support.example.com`), for links in mails and "
            "`supportswarm reset-link`. Unset: mails are off, the CLI prints `http://127.0.0.1:8000` links.",
        ),
    )
    smtp_url: str | None = field(
        default=None,
        metadata=_env(
            "SUPPORTSWARM_SMTP_URL",
            "mail server for password-reset mails: `smtp://user:pass@host:587` (STARTTLS when offered; a password "
            "is only sent encrypted, or to loopback) or `smtps://...:465`. With SUPPORTSWARM_PUBLIC_URL it turns on "
            "\"forgot password?\"; unset: users ask an admin for a reset link.",
        ),
    )
    mail_from: str = field(
        default="SupportSwarm <noreply@localhost>",
        metadata=_env("SUPPORTSWARM_MAIL_FROM", "the From address of mails."),
    )

    def __repr__(self) -> str:
        # URLs may carry passwords: shown with the password masked; the secret key not at all.
        shown = [f"{f.name}={_masked(getattr(self, f.name))!r}" for f in fields(self) if f.repr]
        return f"Settings({', '.join(shown)})"

    @property
    def mail_enabled(self) -> bool:
        """Self-service password reset by mail: a mail server and the address links point to (never the
        request's Host header, which a client chooses)."""
        return bool(self.smtp_url and self.public_url)

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}  # each value parsed to its field's type by _PARSERS
        for name, parse in _PARSERS.items():
            raw = env.get(ENV_NAMES[name])
            if raw is not None and raw != "":
                kwargs[name] = parse(raw)
        return cls(**kwargs)


def _masked(value: object) -> object:
    """`scheme://user:***@host/...` for a URL with a password; anything else unchanged."""
    if not isinstance(value, str) or "://" not in value:
        return value
    parts = urlsplit(value)
    if parts.password is None:
        return value
    userinfo, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{host}"))


def _flag(raw: str) -> bool:
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _words(raw: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in raw.split(",") if w.strip())


_PARSERS: dict[str, Callable[[str], object]] = {
    "database_url": str,
    "redis_url": str,
    "redis_namespace": str,
    "secret_key": str,
    "data_dir": Path,
    "model_path": str,
    "embed_threads": int,
    "answer_threshold": float,
    "swarm_urgent_tags": _words,
    "expert_reputation": int,
    "trusted_reputation": int,
    "sla_minutes": int,
    "flags_to_hide": int,
    "allowed_origins": _words,
    "rate_limits": _flag,
    "json_logs": _flag,
    "debug": _flag,
    "public_url": str,
    "smtp_url": str,
    "mail_from": str,
}

ENV_NAMES = {f.name: f.metadata["env"] for f in fields(Settings)}
