"""The base of every config section: unknown keys and wrong types are errors, never ignored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

NAME_PATTERN = r"^[a-z0-9][a-z0-9_\-]*$"
"""Names of builds, inputs and mixture sources: they become file names and manifest keys."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, validate_assignment=True)
