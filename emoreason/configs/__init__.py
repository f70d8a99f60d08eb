"""The configs shipped inside the package, found with :mod:`importlib.resources` (works from a wheel).

    config_path("mini")                       # -> .../emoreason/configs/mini.yaml
    config_path("paper/table2-sequence-alt1")  # the paper's Table 2 row; ".yaml" may be given or not
    find_config("runs/x/config.yaml")          # an existing file wins; else a packaged name
    list_configs()                             # ["accelerate/ddp", ..., "mini", "paper/...", "tiny"]

Run configs: ``mini`` (the embedded default), ``tiny`` (random tiny models, tests), ``paper/*`` (the
paper's Tables 1-3, 6, 7). ``accelerate/*`` are ``accelerate launch --config_file`` files; print a path with
``python -m emoreason.configs accelerate/ddp``.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path, PurePosixPath

from emoreason.errors import UserError

SUFFIX = ".yaml"


def _root() -> Path:
    """The package's config directory on disk (wheel and editable installs both unpack to files)."""
    root = resources.files(__name__)
    if not isinstance(root, Path):  # e.g. a zipimport: callers hand these files to YAML / accelerate by path
        raise RuntimeError(f"emoreason.configs is not on the file system ({root!r}); install the package unzipped")
    return root


def list_configs() -> list[str]:
    """Names of every packaged config, without ``.yaml``, sorted (``paper/table2-none-joint``, ...)."""
    root = _root()
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob(f"*{SUFFIX}"))


def config_path(name: str) -> Path:
    """Packaged config ``name`` (``mini``, ``mini.yaml``, ``paper/table2-sequence-alt1``) -> its file.

    Raises:
        UserError: no packaged config has that name (the message lists the names).
    """
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise UserError(f"config name {name!r}: expected a packaged name like 'mini' or 'paper/table2-none-joint'")
    if rel.suffix != SUFFIX:
        rel = rel.with_name(rel.name + SUFFIX)
    path = _root().joinpath(*rel.parts)
    if not path.is_file():
        raise UserError(f"config {name!r}: no such file and no packaged config of that name "
                        f"(packaged: {_summary(list_configs())}; `python -m emoreason.configs` lists them)")
    return path


def _summary(names: list[str]) -> str:
    """``mini, tiny, accelerate/* (4), paper/* (27)``: top-level names, then a count per folder."""
    folders: dict[str, int] = {}
    for n in names:
        if "/" in n:
            folder = n.split("/", 1)[0]
            folders[folder] = folders.get(folder, 0) + 1
    return ", ".join([n for n in names if "/" not in n] + [f"{f}/* ({k})" for f, k in sorted(folders.items())])


def find_config(name_or_path: str | Path) -> Path:
    """An existing file as given, else the packaged config of that name (see :func:`config_path`)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    return config_path(str(name_or_path))
