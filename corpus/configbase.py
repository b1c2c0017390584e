"""The base of every config section: unknown keys and wrong types are errors, never ignored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, validate_assignment=True)
