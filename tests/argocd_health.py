"""Run an Argo CD health script the way Argo CD does: Lua 5.1, the object as the global `obj`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa.lua51 as lua51

from tests.conftest import ROOT

CUSTOMIZATIONS = ROOT / "examples" / "argocd" / "resource_customizations" / "modelreg.io"


def health(kind: str, obj: dict[str, Any], script: Path | None = None) -> dict[str, str]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute((script or CUSTOMIZATIONS / kind / "health.lua").read_text())
    return {k: v for k, v in dict(result).items()}
