"""`modelreg sandbox`: a clear word when the optional `testing` extra is not installed."""

from __future__ import annotations

import sys


def cli(argv: list[str] | None = None) -> int:
    try:
        from modelreg.testing.sandbox import cli as sandbox
    except ModuleNotFoundError as exc:
        print(
            f"modelreg sandbox needs the optional extra 'testing' ({exc.name} is not installed): "
            "pip install 'modelreg[testing]'",
            file=sys.stderr,
        )
        return 2
    return sandbox(argv)


if __name__ == "__main__":
    sys.exit(cli())
