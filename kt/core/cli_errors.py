"""The ``kt`` command's argument parser: one line per error, naming the option, file or class that is wrong.

jsonargparse prints the whole usage (a hundred lines) and a report nested per Union subtype; kt prints
``kt: error: <key>: <what is wrong> (<where to look>)``.
"""

from __future__ import annotations

import importlib
import re
from argparse import RawDescriptionHelpFormatter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import DefaultHelpFormatter
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from kt.core.checkpoints import TASKS
from kt.core.errors import InputError, input_error_in
from kt.core.validation import plain_numbers

# Lines of jsonargparse's nested Union report that say nothing the user can act on.
NOISE = re.compile(r"^(Does not validate against any of the Union subtypes|Subtypes:|Errors:|Given value type:"
                   r"|Expected a <class 'NoneType'>|Given value: (NestedArg\(|\{))")
# jsonargparse's words for a class_path it cannot import.
UNKNOWN_CLASS = re.compile(r"Expected a path but (\S+) either not accessible or invalid")
COMPONENTS = {"model": LightningModule, "data": LightningDataModule}


class UsageError(InputError):
    """A command-line or config-file problem (unknown key, wrong type, missing config file)."""


def one_line(message: str) -> str:
    """jsonargparse's multi-line report (nested per Union subtype) as one line: the key, then what is wrong."""
    parts = [line.strip().lstrip("- ").strip() for line in message.splitlines()]
    parts = [p for p in parts if p and not NOISE.match(p)]
    text = " ".join(p if p.endswith(":") else p.rstrip(".") + ";" for p in parts).rstrip(";")
    text = re.sub(r"(a )?<class '(\w+)'>", r"\2", text)
    return re.sub(r'^Parser key "([^"]+)":', r"\1:", text)


def known_classes(component: str) -> list[str]:
    """The class names ``--model`` (LightningModules) or ``--data`` (DataModules) accepts: the task packages'."""
    base = COMPONENTS[component]
    names = (getattr(module, name) for module in map(importlib.import_module, TASKS) for name in module.__all__)
    return sorted(cls.__name__ for cls in names if isinstance(cls, type) and issubclass(cls, base))


def subcommand_named(prog: str, message: str) -> str | None:
    """The Lightning subcommand an error is about: in the parser's name, or named by the main parser's message
    ("Subcommand 'fit' ...", "fit.model")."""
    words = prog.split() + re.findall(r"Subcommand '(\w+)'|\b(\w+)\.\w", message)
    words = [w if isinstance(w, str) else "".join(w) for w in words]
    return next((w for w in words if w in LightningCLI.subcommands()), None)


def unknown_class_message(message: str, subcommand: str | None) -> str | None:
    """``--model kt.tracing.NoSuchModel``: the known classes, instead of jsonargparse's import failure."""
    component = re.match(r'Parser key "(model|data)":', message)
    unknown = UNKNOWN_CLASS.search(message)
    if not component or not unknown:
        return None
    key = component.group(1)
    help_cmd = f"`kt {subcommand or 'fit'} --{key}.help NAME` lists one's options"
    return f"{key}: no class {unknown.group(1)!r}; known: {', '.join(known_classes(key))} ({help_cmd})"


def help_hint(subcommand: str | None, message: str) -> str:
    """Where to read about the option the message is about."""
    if subcommand is None:
        return "see `kt --help`"
    # An option of the model or data class: point at that class's own help.
    component = re.match(r'Parser key "(model|data)":', message)
    cls = re.search(r"class_path '[\w.]*?(\w+)'", message)
    if component and cls:
        return f"`kt {subcommand} --{component.group(1)}.help {cls.group(1)}` lists its options"
    return f"`kt {subcommand} --help` lists the options"


def config_files(args: Iterable[str]) -> list[str]:
    """The files given with ``--config``/``-c`` in ``args``."""
    args = list(args)
    found = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg in ("--config", "-c")]
    return found + [arg.split("=", 1)[1] for arg in args if arg.startswith("--config=")]


def yaml_error(paths: Iterable[str | Path]) -> str | None:
    """``<file>, line L, column C: <what YAML found>`` for the first of ``paths`` that is not valid YAML."""
    for path in paths:
        try:
            yaml.safe_load(Path(path).read_text())
        except OSError:
            continue  # a missing file is reported by the parser itself
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
            problem = getattr(err, "problem", None) or str(err)
            context = getattr(err, "context", None)
            return f"{where}: not valid YAML: {problem}" + (f" ({context})" if context else "")
    return None


class KTArgumentParser(LightningArgumentParser):
    """Lightning's parser with kt's one-line errors and no abbreviated options (``--trainer.max_epo 3`` is an
    error, not ``--trainer.max_epochs 3``: a typo must not silently pick whichever option it is a prefix of).
    LightningCLI builds the subcommand parsers with this class too, so they refuse abbreviations as well."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None):
        # Parsers that do not exit on error (jsonargparse tries Union subtypes with them) keep raising theirs.
        if not self.exit_on_error:
            return super().error(message, ex)
        subcommand = subcommand_named(self.prog, message)
        unknown = unknown_class_message(message, subcommand)
        if unknown is not None:
            raise UsageError(unknown)
        raise UsageError(f"{one_line(message)} ({help_hint(subcommand, message)})")

    def instantiate_classes(self, cfg: Any, *args: Any, **kwargs: Any) -> Any:
        # Range-checked numbers (kt.core.validation) become plain ones: checkpoints hold only plain values.
        try:
            return super().instantiate_classes(plain_numbers(cfg), *args, **kwargs)
        except ValueError as err:
            # A model's or DataModule's own check (an InputError in its __init__), not jsonargparse's report.
            raise input_error_in(err) or err from None


class HelpFormatter(RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help, with the epilog's line breaks (the tools and shipped configs) kept."""
