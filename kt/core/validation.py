"""Numeric option types that carry their range, for ``__init__`` signatures.

The parser checks the range before anything runs (``kt: error: data.init_args.batch_size: ... v>0``), and
``--help`` shows it (``batch_size: PositiveInt``). jsonargparse returns instances of these types (an
``int`` or ``float`` subclass); :func:`plain_numbers` turns them back into plain numbers before the classes
are built, so that hyperparameters saved in a checkpoint stay plain values (``weights_only`` loading
refuses any other class).
"""

from __future__ import annotations

from typing import Any

from jsonargparse import Namespace
from jsonargparse.typing import (
    ClosedUnitInterval,
    NonNegativeFloat,
    NonNegativeInt,
    OpenUnitInterval,
    PositiveFloat,
    PositiveInt,
    restricted_number_type,
)

from kt.core.errors import InputError

# A share that may be 0 but never everything: split fractions, dropout, label smoothing.
Fraction = restricted_number_type("Fraction", float, [(">=", 0), ("<", 1)], docstring="0 <= v < 1")
# Lightning's max_epochs / max_steps: -1 means "no limit".
EpochLimit = restricted_number_type("EpochLimit", int, [(">=", -1)], docstring="-1 (no limit) or >= 0")

__all__ = [
    "ClosedUnitInterval",
    "EpochLimit",
    "Fraction",
    "NonNegativeFloat",
    "NonNegativeInt",
    "OpenUnitInterval",
    "PositiveFloat",
    "PositiveInt",
    "check_split_fractions",
    "plain_numbers",
]


def plain_numbers(value: Any) -> Any:
    """``value`` (a parsed config: Namespace, dict, list) with every restricted number as a plain int/float."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, Namespace):
        for key, item in vars(value).items():
            setattr(value, key, plain_numbers(item))
        return value
    if isinstance(value, dict):
        return type(value)((key, plain_numbers(item)) for key, item in value.items())
    if isinstance(value, list):
        return [plain_numbers(item) for item in value]
    if isinstance(value, int) and type(value) is not int:
        return int(value)
    if isinstance(value, float) and type(value) is not float:
        return float(value)
    return value


def check_split_fractions(owner: str, pool: int | None = None, **fractions: float) -> None:
    """Held-out fractions taken from one pool must leave part of it for training; with the pool's size
    known (``pool`` students), each held-out part (``round(fraction * pool)``, as the split takes it) too."""
    total = sum(fractions.values())
    if total >= 1:
        named = " + ".join(f"{name} {value:g}" for name, value in fractions.items())
        raise InputError(
            f"{owner}: {named} = {total:g} leaves no training data; the held-out fractions must add up to less than 1"
        )
    if pool is None:
        return
    for name, value in fractions.items():
        if value > 0 and round(value * pool) == 0:  # 0 asks for no such split
            raise InputError(
                f"{owner}: {name} {value:g} of {pool} students is an empty split; raise it to at least {1 / pool:.3g}"
            )
    if pool - sum(round(value * pool) for value in fractions.values()) <= 0:
        raise InputError(f"{owner}: the held-out fractions leave none of the {pool} students for training")


# Trainer options kt checks itself (the Trainer's signature cannot carry a range): -1 means "no limit".
TRAINER_LIMITS = ("max_epochs", "max_steps", "min_epochs", "min_steps")


def check_trainer_limits(trainer: Any) -> None:
    """``trainer.max_epochs`` and the like: None, -1 or a count, refused before any run folder exists."""
    for key in TRAINER_LIMITS:
        value = trainer.get(key) if trainer is not None else None
        if value is not None and not isinstance(value, bool) and value < -1:
            raise InputError(f"trainer.{key}: expected -1 (no limit) or a count >= 0, got {value}")


def check_split_sizes(owner: str, sizes: dict[str, int], options: dict[str, str]) -> None:
    """Every split a run uses has rows: ``sizes`` per split, ``options`` the option that sized each one."""
    for name, size in sizes.items():
        if size == 0:
            how = f" (set by {options[name]})" if name in options else ""
            raise InputError(f"{owner}: the {name} split is empty{how}; give it at least one student or row")
