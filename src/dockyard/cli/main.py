"""`dockyard`: for now only `--version`; the docker-compatible commands arrive with the
daemon (see the README's feature table)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    from .. import __version__

    if args in (["--version"], ["-v"], ["version"]):
        print(f"Dockyard version {__version__}")
        return 0
    sys.stderr.write("dockyard: the engine commands are not implemented yet; "
                     "dockyard-runc is the OCI runtime\n")
    return 125


if __name__ == "__main__":
    sys.exit(main())
