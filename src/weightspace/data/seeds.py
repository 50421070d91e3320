"""Deterministic child seeds derived from a base seed and a path of keys.

A job's seed is a pure function of (base seed, setting, chunk, ...), never of the
clock or of Python's per-process string hashing, so reruns, resumed jobs and jobs on
other machines draw the same random numbers.

Every key is turned into a 128-bit integer by SHA-256 of a type-tagged text form
("int:3", "str:3"), so the int 3 and the string "3" give different seeds and keys
of any size (negative ints, long names) are accepted.  The integers are the entropy
of a numpy SeedSequence, which mixes them into well-separated streams.
"""

from __future__ import annotations

import hashlib
import numbers

import numpy as np

_KEY_BITS = 128


def _key_to_int(key: object) -> int:
    if isinstance(key, bool):
        # bool is an int subclass; True == 1 would silently collide with the key 1.
        raise TypeError(
            f"seed key {key!r} is a bool; pass an int or a string (e.g. 'on'/'off') instead"
        )
    if isinstance(key, numbers.Integral):
        text = f"int:{int(key)}"
    elif isinstance(key, str):
        text = f"str:{key}"
    else:
        raise TypeError(
            f"seed key {key!r} has type {type(key).__name__}; keys must be ints or strings "
            f"(format floats and other values as strings, e.g. f'{{value:g}}')"
        )
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[: _KEY_BITS // 8], "little")


def _check_base(base: object) -> int:
    if isinstance(base, bool) or not isinstance(base, numbers.Integral):
        raise TypeError(
            f"base seed must be an int, got {base!r} ({type(base).__name__})"
        )
    if base < 0:
        raise ValueError(
            f"base seed must be non-negative, got {base}; use e.g. abs(seed) or a fresh seed"
        )
    return int(base)


def seed_sequence(base: int, *keys: int | str) -> np.random.SeedSequence:
    """SeedSequence for (base, *keys); equal arguments give equal sequences in every process."""
    entropy = [_check_base(base)] + [_key_to_int(key) for key in keys]
    return np.random.SeedSequence(entropy)


def derive_seed(base: int, *keys: int | str, bits: int = 32) -> int:
    """A child seed in [0, 2**bits) for (base, *keys).

    The default of 32 bits is accepted by every consumer in the project
    (numpy's legacy RandomState and scikit-learn's random_state need < 2**32);
    ask for bits=63 where many seeds are drawn and collisions must be negligible.
    """
    if bits not in (32, 63, 64):
        raise ValueError(f"bits must be 32, 63 or 64, got {bits}")
    state = seed_sequence(base, *keys).generate_state(1, dtype=np.uint64)[0]
    return int(state) >> (64 - bits)


def numpy_rng(base: int, *keys: int | str) -> np.random.Generator:
    """A numpy Generator seeded from (base, *keys)."""
    return np.random.default_rng(seed_sequence(base, *keys))


def torch_generator(base: int, *keys: int | str, device: str = "cpu"):
    """A torch Generator seeded from (base, *keys)."""
    # Imported here so that seed derivation alone does not pay for importing torch.
    import torch

    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(base, *keys, bits=63))
    return generator
