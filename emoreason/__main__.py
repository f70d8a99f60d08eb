import sys

from emoreason.cli import main

sys.exit(main())
