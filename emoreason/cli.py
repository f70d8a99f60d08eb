"""The ``emoreason`` console script: verbs -> functions, no logic beyond argument handling.

Each verb lives in the module that owns the capability and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (a callable taking the parsed args and returning an exit
code). Heavy imports (torch, transformers) happen inside those functions so ``--help`` is instant.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys

from emoreason.errors import UserError

# verb -> module providing register(subparsers). "data" groups several sub-verbs.
VERBS: dict[str, str] = {
    "train": "emoreason.train.cli",
    "analyze": "emoreason.inference.cli",
    "serve": "emoreason.inference.server",
    "eval": "emoreason.eval.cli",
    "demo": "emoreason.demo",
    "weights": "emoreason.weights.cli",
    "export": "emoreason.model.export",
}
DATA_VERBS: list[str] = ["emoreason.data_cli", "emoreason.teacher.cli"]


def package_version() -> str:
    """The installed distribution's version; the source tree's ``__version__`` when not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("emoreason")
    except PackageNotFoundError:
        from emoreason import __version__

        return __version__


class _VersionAction(argparse.Action):
    """``--version``: looks the version up only when asked (the metadata lookup imports
    ``importlib.metadata`` and ``email``, a cost every other command would pay for nothing)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        print(f"emoreason {package_version()}")  # stdout, as argparse's own "version" action
        parser.exit()


def _register(module_name: str, subparsers: argparse._SubParsersAction) -> None:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:  # capability not installed in this build
            return
        raise
    module.register(subparsers)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; ``only``: register just that verb (``main`` passes the verb it was
    given, so ``emoreason analyze`` does not import the modules of train, eval, demo, export ...)."""
    parser = argparse.ArgumentParser(
        prog="emoreason",
        description="Speech emotion reasoning with multi-task audio LLMs: build data, train, evaluate, analyze.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    data = sub.add_parser("data", help="import corpora, synthesize speech, build reasoning targets")
    data_sub = data.add_subparsers(dest="data_verb", metavar="DATA_VERB")
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])
    if only in (None, "data"):
        for name in DATA_VERBS:
            _register(name, data_sub)
    for verb, name in VERBS.items():
        if only in (None, verb):
            _register(name, sub)
    return parser


def _verb(argv: list[str]) -> str | None:
    """The verb ``argv`` names when it is a known one (the first word that is not an option: the
    top-level options take no values), else None."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in VERBS or word == "data" else None


_DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EDQUOT}
"""Output errors a user fixes (full, read-only or forbidden disk): one line, not a traceback."""


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # a command line (the console script, python -m emoreason), not a caller in process
        if not sys.stderr.isatty():
            # a log file or a pipe: transformers' "Loading weights" bar of every model load (and the
            # hub's download bars) would be a line of noise each; read when transformers is imported
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from emoreason import startup

        startup.enable()  # the collector paused while torch and the model load (emoreason/startup.py)
    parser = build_parser(only=_verb(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not args.verbose:  # httpx logs every request at INFO: a line per clip sent to a server or judge
        logging.getLogger("httpx").setLevel(logging.WARNING)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print("emoreason: interrupted (finished work is kept; rerun to resume)", file=sys.stderr)
        return 130
    except UserError as e:
        print(f"emoreason: error: {e}", file=sys.stderr)
        return 1
    except MemoryError:
        print("emoreason: error: out of memory (finished work is kept; try a smaller --batch-size, shorter "
              "files or fewer at once)", file=sys.stderr)
        return 1
    except OSError as e:
        if e.errno not in _DISK_ERRNOS:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"emoreason: error: {where}{e.strerror} (finished work is kept; rerun once the disk has space / "
              "is writable)", file=sys.stderr)
        return 1
    return int(code or 0)


def run() -> None:  # pragma: no cover - console entry
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
