"""`python -m services.replay ...` (same as `billsync replay ...`)."""

import argparse
import sys

from services.replay.cli import register
from shared.logging import configure_logging
from shared.settings import get_settings

configure_logging(get_settings().log_level, service="replay", stream=sys.stderr)
_parser = argparse.ArgumentParser(prog="billsync")
register(_parser.add_subparsers(dest="command", required=True))
_args = _parser.parse_args(["replay", *sys.argv[1:]])
sys.exit(_args.func(_args))
