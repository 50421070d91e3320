"""One row of a target's claims file: the paper's claim, its published value, what this
run reproduced and whether the claim holds here: true, false, or None (null in the
file) when this scale cannot test it (``reproduced`` then says why)."""

from __future__ import annotations


def claim(claim: str, published: str, reproduced: str, holds: bool | None) -> dict:
    return {
        "claim": claim,
        "published": published,
        "reproduced": reproduced,
        "holds": None if holds is None else bool(holds),
    }
