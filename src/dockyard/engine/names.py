"""Random container names in Docker's style (adjective_surname). The word lists are ours."""

from __future__ import annotations

import secrets

_ADJECTIVES = (
    "able", "amazing", "bold", "brave", "bright", "calm", "clever", "cool", "crisp", "daring",
    "eager", "epic", "fair", "fancy", "fervent", "festive", "gentle", "happy", "hardy",
    "humble", "jolly", "keen", "kind", "lively", "lucid", "merry", "modest", "nifty", "noble",
    "patient", "plucky", "proud", "quick", "quiet", "rapid", "serene", "sharp", "sleepy",
    "steady", "sturdy", "sunny", "swift", "tender", "tidy", "trusty", "upbeat", "vivid",
    "warm", "wise", "witty", "zealous",
)
# Shipbuilders, sailors and navigators, in keeping with the name.
_SURNAMES = (
    "beaufort", "bering", "bligh", "brunel", "cabot", "cartier", "columbus", "cook", "dampier",
    "drake", "earhart", "eriksson", "flinders", "frobisher", "gama", "hudson", "humboldt",
    "magellan", "mercator", "nansen", "parry", "peary", "polo", "ross", "scott", "shackleton",
    "tasman", "vancouver", "vespucci", "zheng",
)


def random_name(with_number: bool = False) -> str:
    name = f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_SURNAMES)}"
    return f"{name}{secrets.randbelow(10)}" if with_number else name
