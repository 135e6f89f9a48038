"""The notes API's request and response bodies."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    field_validator,
)
from pydantic.config import JsonDict
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from shared.service.openapi import NO_NUL
from shared.text import has_nul

TITLE_MAX = 200
BODY_MAX_BYTES = 100_000  # 100 KB of UTF-8


def _no_nul(value: str) -> str:
    if has_nul(value):
        raise ValueError("the text must not contain NUL characters")
    return value


class _Documented:
    """Adds `extra` to the JSON Schema of the annotated type."""

    def __init__(self, extra: JsonDict) -> None:
        self.extra = extra

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(core_schema), **self.extra}


# Stored text: PostgreSQL refuses U+0000, so no database gets it (422, never a 500); the
# OpenAPI document says so on the string itself (also inside `anyOf` when it may be null).
StoredText = Annotated[str, AfterValidator(_no_nul), _Documented(NO_NUL)]
# JSON Schema counts characters, not bytes: the document says the rest in words.
TITLE_DOC: JsonDict = {"description": "No NUL characters."}
BODY_DOC: JsonDict = {
    "description": f"At most {BODY_MAX_BYTES:,} bytes of UTF-8; no NUL characters."
}


def _body_size(value: str) -> str:
    if len(value.encode("utf-8")) > BODY_MAX_BYTES:
        raise ValueError(f"the body must be at most {BODY_MAX_BYTES} bytes of UTF-8")
    return value


class NoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: StoredText = Field(min_length=1, max_length=TITLE_MAX, json_schema_extra=TITLE_DOC)
    body: StoredText = Field(default="", max_length=BODY_MAX_BYTES, json_schema_extra=BODY_DOC)

    _check_body = field_validator("body")(_body_size)


class NoteUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: StoredText | None = Field(
        default=None, min_length=1, max_length=TITLE_MAX, json_schema_extra=TITLE_DOC
    )
    body: StoredText | None = Field(
        default=None, max_length=BODY_MAX_BYTES, json_schema_extra=BODY_DOC
    )

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
