from __future__ import annotations

from pathlib import Path

import pytest

from supportswarm.errors import ConfigurationError
from supportswarm.resources import resolve_secret_key
from supportswarm.settings import ENV_NAMES, Settings


def test_from_env_reads_every_documented_variable() -> None:
    env = {
        "DATABASE_URL": "postgresql://u:p@db:5432/x",
        "REDIS_URL": "redis://r:6379/0",
        "SECRET_KEY": "k",
        "SUPPORTSWARM_DATA_DIR": "/srv/data",
        "SUPPORTSWARM_SWARM_URGENT_TAGS": "outage, billing",
        "SUPPORTSWARM_RATE_LIMITS": "0",
        "SUPPORTSWARM_SLA_MINUTES": "15",
    }
    settings = Settings.from_env(env)
    assert settings.database_url == "postgresql://u:p@db:5432/x" and settings.redis_url == "redis://r:6379/0"
    assert settings.data_dir == Path("/srv/data")
    assert settings.swarm_urgent_tags == ("outage", "billing")
    assert settings.rate_limits is False and settings.sla_minutes == 15
    assert not settings.embedded


def test_secret_key_is_required_outside_single_node_mode(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        resolve_secret_key(Settings(database_url="postgresql://x/y", data_dir=tmp_path))
    with pytest.raises(ConfigurationError):
        resolve_secret_key(Settings(redis_url="redis://x", data_dir=tmp_path))


def test_embedded_mode_keeps_a_generated_secret(tmp_path: Path) -> None:
    first = resolve_secret_key(Settings(data_dir=tmp_path))
    assert len(first) > 40
    assert resolve_secret_key(Settings(data_dir=tmp_path)) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_every_setting_has_an_environment_variable() -> None:
    assert len(set(ENV_NAMES.values())) == len(ENV_NAMES)


def test_repr_masks_passwords_in_urls_and_hides_the_secret_key() -> None:
    settings = Settings(database_url="postgresql://app:db-pass%40word@db:5432/x",
                        redis_url="redis://:redis-pass@r:6379/0", smtp_url="smtp://mailer:smtp-pass@mail:587",
                        secret_key="the-secret-key", public_url="https://support.example.com")
    shown = repr(settings)
    for secret in ("db-pass", "redis-pass", "smtp-pass", "the-secret-key"):
        assert secret not in shown
    assert "postgresql://app:***@db:5432/x" in shown and "redis://:***@r:6379/0" in shown
    assert "smtp://mailer:***@mail:587" in shown and "https://support.example.com" in shown
    assert repr(Settings(redis_url="redis://r:6379/0")).count("redis://r:6379/0") == 1  # nothing to mask


def test_mail_needs_a_server_and_a_public_url() -> None:
    assert not Settings(smtp_url="smtp://mail:25").mail_enabled  # links would point at whatever Host was sent
    assert Settings(smtp_url="smtp://mail:25", public_url="https://support.example.com").mail_enabled
    env = {"SUPPORTSWARM_SMTP_URL": "smtps://m:465", "SUPPORTSWARM_PUBLIC_URL": "https://s.example",
           "SUPPORTSWARM_MAIL_FROM": "Help <help@s.example>"}
    settings = Settings.from_env(env)
    assert (settings.smtp_url, settings.public_url, settings.mail_from) == (
        "smtps://m:465", "https://s.example", "Help <help@s.example>")
