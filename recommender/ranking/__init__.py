"""Ranking: profiles built from likes, dislikes and interests, the scoring kernel, and digest candidate rules."""
