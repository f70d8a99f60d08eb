"""``python -m emoreason.configs [NAME ...]``: list the packaged configs, or print the path of each NAME.

    accelerate launch --config_file "$(python -m emoreason.configs accelerate/ddp)" -m emoreason train ...
"""
from __future__ import annotations

import sys

from emoreason.configs import config_path, list_configs
from emoreason.errors import UserError


def main(argv: list[str]) -> int:
    """Print one path per NAME (or every packaged name); 1 with a one-line error for an unknown name."""
    try:
        lines = [str(config_path(name)) for name in argv] if argv else list_configs()
    except UserError as e:
        print(f"emoreason.configs: error: {e}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
