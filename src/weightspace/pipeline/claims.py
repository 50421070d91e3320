"""One row of a target's claims file: the paper's claim, its published value, what this
run reproduced and whether the claim holds here."""

from __future__ import annotations


def claim(claim: str, published: str, reproduced: str, holds: bool) -> dict:
    return {
        "claim": claim,
        "published": published,
        "reproduced": reproduced,
        "holds": bool(holds),
    }
