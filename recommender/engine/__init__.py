"""The engine stage: the recommender's front door (:mod:`.core`) and the daily pipeline (:mod:`.pipeline`)."""
from recommender.engine.core import Engine, Recommendation

__all__ = ["Engine", "Recommendation"]
