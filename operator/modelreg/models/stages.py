"""The stages a version moves through: named once, used everywhere."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args


class Stage(StrEnum):
    NONE = ""
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"


# What a promotion may target (and a policy or a CLI flag may name), spelled for schemas and
# error messages; the assertion keeps it the enum's.
TargetStage = Literal["Staging", "Production", "Archived"]
TARGETS: tuple[Stage, ...] = (Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED)
assert get_args(TargetStage) == tuple(s.value for s in TARGETS)

# Held by one version of a model at a time; entering one displaces its holder there.
EXCLUSIVE = frozenset({Stage.STAGING, Stage.PRODUCTION})
DISPLACED_TO = {Stage.PRODUCTION: Stage.ARCHIVED, Stage.STAGING: Stage.NONE}
# How listings order stages: what serves users first.
DISPLAY_ORDER = {Stage.PRODUCTION: 0, Stage.STAGING: 1, Stage.ARCHIVED: 2}
