#!/usr/bin/env python3
"""The seed's user tool: ``python manage_users.py create testuser 500`` and friends.

It runs ``mjcore users ...`` so both stay the same program.
"""

import sys
from pathlib import Path

try:
    from entrypoints.cli import main
except ImportError:  # a checkout without `pip install -e .`: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from entrypoints.cli import main

if __name__ == "__main__":
    sys.exit(main(["users", *sys.argv[1:]]))
