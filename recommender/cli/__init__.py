"""The ``arxiv-digest`` command line: the main program (:mod:`.main`) and the recommender's subcommands."""
from recommender.cli.main import main

__all__ = ["main"]
