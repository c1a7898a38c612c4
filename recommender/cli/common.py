"""What every ``arxiv-digest`` subcommand shares: its settings from the parsed arguments, the store, its output.

Every subcommand, including those that ``bot`` and ``training`` register through the ``arxiv_digest.cli``
entry point, takes its :class:`~recommender.config.Settings` from :func:`settings_from`, so the global
``--home`` means the same state directory (and the same store) for all of them. This module imports nothing
of the other CLI modules, so they can all import it without a cycle.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from recommender.config import Settings, load_settings
from recommender.store import Store


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings for a parsed command line: ``--home`` (when given) over the environment and config file."""
    home = getattr(args, "home", None)
    return load_settings(home=Path(home)) if home else load_settings()


def open_store(settings: Settings) -> Store:
    """The store of ``settings.home`` (created, migrated and given the taxonomy when new)."""
    settings.ensure_home()
    return Store(settings.db_path, taxonomy=settings.taxonomy_path)


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print ``data`` as JSON with ``--json``, else the readable ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        print(text)
