"""Settings: the one configuration object of arxiv-digest.

Values come, in increasing priority, from built-in defaults, an optional TOML file (``ARXIV_DIGEST_CONFIG``,
default ``<home>/config.toml``) and environment variables ``ARXIV_DIGEST_<NAME>``. Every base URL the product
talks to is a setting, so tests can point them at servers on 127.0.0.1. The Telegram token is read from
``TELEGRAM_BOT_TOKEN`` and never appears in ``repr`` or logs.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from recommender import paths

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A setting has a value that cannot be used."""


@dataclass(frozen=True)
class Settings:
    """All settings; see the README's table for what each one does."""

    home: Path = Path("var")
    rss_url: str = "https://rss.arxiv.org/rss"
    api_url: str = "https://export.arxiv.org/api/query"
    oai_url: str = "https://oaipmh.arxiv.org/oai"  # arXiv's OAI-PMH endpoint (bulk harvest)
    telegram_api_url: str = "https://api.telegram.org/bot"
    telegram_token: str = field(default="", repr=False)
    categories: tuple[str, ...] = ("cs.LG", "cs.CL", "cs.CV", "cs.AI", "stat.ML")
    api_delay: float = 3.0
    api_retries: int = 5
    api_timeout: float = 30.0
    api_empty_page_retries: int = 3
    api_page_size: int = 100
    model: str = ""  # sentence-transformers model name or path; empty = bundled all-MiniLM-L6-v2
    embed_backend: str = "auto"  # auto | onnx | torch
    classifier_dir: str = ""  # empty = the shipped model under data/models
    demo_corpus: Path = paths.DEMO_CORPUS
    demo_vectors: Path = paths.DEMO_VECTORS  # their vectors (used only if made by the same model)
    ingest_interval_minutes: int = 30
    digest_hour: int = 8
    digest_timezone: str = "UTC"
    digest_size: int = 5
    min_score: float = 0.30
    warmup_embed_limit: int = 20_000  # at most this many missing vectors are embedded by the bot when it starts
    ann_min_vectors: int = 50_000  # from this many vectors /similar searches an approximate graph (exact below)

    @property
    def db_path(self) -> Path:
        return self.home / "arxiv_digest.sqlite"

    @property
    def vectors_dir(self) -> Path:
        return self.home / "vectors"

    @property
    def taxonomy_path(self) -> Path:
        return paths.TAXONOMY

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home


def _coerce(name: str, target: Any, raw: Any) -> Any:
    """Convert a raw env/TOML value to the type of the default ``target``."""
    try:
        if isinstance(target, bool):
            if isinstance(raw, bool):
                return raw
            return str(raw).strip().lower() in {"1", "true", "yes", "on"}
        if isinstance(target, int):
            return int(raw)
        if isinstance(target, float):
            return float(raw)
        if isinstance(target, Path):
            return Path(str(raw)).expanduser()
        if isinstance(target, tuple):
            items = raw if isinstance(raw, (list, tuple)) else str(raw).replace(",", " ").split()
            return tuple(str(x).strip() for x in items if str(x).strip())
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name!r}: cannot use {raw!r} ({exc})") from None


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build the settings from defaults, the TOML file, the environment, then explicit ``overrides``."""
    env = os.environ if env is None else env
    defaults = Settings()
    values: dict[str, Any] = {}
    # an explicit home (the command line's --home) beats $ARXIV_DIGEST_HOME, also for finding config.toml
    home = Path(overrides.get("home") or env.get("ARXIV_DIGEST_HOME") or defaults.home).expanduser()
    config_file = Path(env.get("ARXIV_DIGEST_CONFIG", str(home / "config.toml")))
    names = {f.name for f in fields(Settings)}
    if config_file.is_file():
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_file}: invalid TOML: {exc}") from None
        for key, raw in data.items():
            if key not in names or key == "telegram_token":
                raise ConfigError(f"{config_file}: unknown setting {key!r}")
            values[key] = _coerce(key, getattr(defaults, key), raw)
    for f in fields(Settings):
        if f.name == "telegram_token":
            continue
        raw = env.get(f"ARXIV_DIGEST_{f.name.upper()}")
        if raw is not None and raw != "":
            values[f.name] = _coerce(f.name, getattr(defaults, f.name), raw)
    if env.get("TELEGRAM_API_URL"):
        values["telegram_api_url"] = env["TELEGRAM_API_URL"]
    values["telegram_token"] = env.get("TELEGRAM_BOT_TOKEN", "")
    values["home"] = home
    for key, raw in overrides.items():
        if key not in names:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = raw
    settings = dataclasses.replace(defaults, **values)
    if not 0 <= settings.digest_hour <= 23:
        raise ConfigError(f"digest_hour must be 0..23, not {settings.digest_hour}")
    return settings
