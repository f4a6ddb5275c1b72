"""`modelreg-operator`: a clear word when the optional `operator` extra is not installed."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    try:
        from modelreg.main import main as run
    except ModuleNotFoundError as exc:
        print(
            f"modelreg-operator needs the optional extra 'operator' ({exc.name} is not installed): "
            "pip install 'modelreg[operator]'",
            file=sys.stderr,
        )
        return 2
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
