"""`modelreg`: `fetch` (always installed) and `sandbox` (a clear word when the optional extra
`sandbox` is not installed)."""

from __future__ import annotations

import sys


def cli(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fetch"]:  # `pip install modelreg` alone: no test doubles needed
        from modelreg.cli.fetch import main as fetch

        return fetch(argv[1:])
    try:
        from modelreg.sandbox.main import cli as sandbox
    except ModuleNotFoundError as exc:
        if argv[:1] != ["sandbox"]:
            print("usage: modelreg {fetch,sandbox} ...  (modelreg fetch --help)", file=sys.stderr)
            return 2
        print(
            f"modelreg sandbox needs the optional extra 'sandbox' ({exc.name} is not installed): "
            "pip install 'modelreg[sandbox]'",
            file=sys.stderr,
        )
        return 2
    return sandbox(argv)


if __name__ == "__main__":
    sys.exit(cli())
