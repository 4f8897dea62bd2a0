"""`python -m importer.sandbox`: the same as `importer sandbox`."""

import argparse
import sys

from importer.sandbox.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m importer.sandbox", description="A local Commerce Layer API."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
