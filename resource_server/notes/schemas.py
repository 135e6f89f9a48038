"""The notes API's request and response bodies."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, field_validator

TITLE_MAX = 200
BODY_MAX_BYTES = 100_000  # 100 KB of UTF-8


def _body_size(value: str) -> str:
    if len(value.encode("utf-8")) > BODY_MAX_BYTES:
        raise ValueError(f"the body must be at most {BODY_MAX_BYTES} bytes of UTF-8")
    return value


class NoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=TITLE_MAX)
    body: str = Field(default="", max_length=BODY_MAX_BYTES)

    _check_body = field_validator("body")(_body_size)


class NoteUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=TITLE_MAX)
    body: str | None = Field(default=None, max_length=BODY_MAX_BYTES)

    @field_validator("body")
    @classmethod
    def _check_body(cls, value: str | None) -> str | None:
        return None if value is None else _body_size(value)


class NoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    body: str
    created_at: dt.datetime
    updated_at: dt.datetime


class NotePage(BaseModel):
    items: list[NoteOut]
    next_cursor: str | None
