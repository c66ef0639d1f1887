"""`kfkd` command line: the same words as the Makefile (train, submit, ...).

Each command lives in kfkd_kit/commands/<name>.py. Bad input (a missing file, a malformed
row, an impossible option) is one line on stderr and exit status 2; anything unexpected is
a bug and shows its traceback. KFKD_DEBUG=1 shows the traceback of bad input too.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

DEBUG_ENV = "KFKD_DEBUG"


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line gives one line on stderr (and exit status 2)
    instead of the usage block: the line says what is wrong and where --help is."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _command_module(name):
    return importlib.import_module(f"kfkd_kit.commands.{name}")


def build_parser(names=None) -> argparse.ArgumentParser:
    """`kfkd`'s parser. The commands in ``names`` (module names; all by default) get their
    full options; the others are listed by name and one line of help only, so that their
    modules, and the torch, sklearn or pandas they import, are not loaded."""
    from . import __version__
    from .commands import COMMANDS, command_name
    parser = _Parser(prog="kfkd", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in COMMANDS.items():
        if names is None or name in names:
            _command_module(name).add_parser(sub)
        else:
            sub.add_parser(command_name(name), help=summary)
    return parser


def _expected(exc) -> bool:
    """Bad input the user can fix from the one line: our own checks raise ValueError (or a
    subclass), and files that are missing or unreadable raise OSError."""
    return isinstance(exc, (ValueError, OSError))


def main(argv=None) -> int:
    from .commands import module_name
    argv = sys.argv[1:] if argv is None else list(argv)
    # only the command run is imported: `kfkd --help` loads no torch, and neither does
    # `kfkd predict` with an .onnx model
    command = module_name(argv[0]) if argv else None
    parser = build_parser([command] if command else [])
    args = parser.parse_args(argv)
    if getattr(args, "message", None) is not None and not getattr(args, "kaggle", False):
        parser.error("--message is the Kaggle submission's description: it needs --kaggle")
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print(f"kfkd {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if not _expected(exc):
            raise                          # a bug: Python prints the whole traceback
        # Bad input: one clear line, non-zero exit (outputs are written atomically,
        # so nothing partial is left behind).
        if debug:
            traceback.print_exc()
        print(f"kfkd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
