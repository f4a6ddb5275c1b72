"""A minimal pyfunc flavor's loader (MLmodel `loader_module`) for the MLflow front-door tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Weights:
    def __init__(self, path: str) -> None:
        self.data = Path(path).read_bytes()

    def predict(self, model_input: Any, params: Any = None) -> list[bytes]:
        return [self.data]


def _load_pyfunc(path: str) -> Weights:
    return Weights(path)
