"""Notes, owned by the token's `sub`. Another owner's note is "not found", never "forbidden",
so that existence doesn't leak. Flushes only: the request's unit of work commits."""

from __future__ import annotations

import base64
import binascii
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from resource_server.notes.schemas import NoteCreate, NoteUpdate
from resource_server.persistence.models import Note
from shared.service.db import utcnow
from shared.text import is_ascii_number


class NoteNotFound(Exception):
    pass


class BadCursor(ValueError):
    pass


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"n:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor("the cursor is not valid") from None
    prefix, _, number = raw.partition(":")
    if prefix != "n" or not is_ascii_number(number) or len(number) > 18:
        raise BadCursor("the cursor is not valid")
    return int(number)


async def create(db: AsyncSession, owner: str, data: NoteCreate) -> Note:
    now = utcnow()
    note = Note(
        id=str(uuid.uuid4()),
        owner=owner,
        title=data.title,
        body=data.body,
        created_at=now,
        updated_at=now,
    )
    db.add(note)
    await db.flush()
    return note


async def get(db: AsyncSession, owner: str, note_id: str) -> Note:
    if len(note_id) > 36:
        raise NoteNotFound(note_id)
    note = await db.scalar(select(Note).where(Note.id == note_id, Note.owner == owner))
    if note is None:
        raise NoteNotFound(note_id)
    return note


async def list_page(
    db: AsyncSession, owner: str, limit: int, cursor: str | None
) -> tuple[list[Note], str | None]:
    """Newest first. The cursor is the last `seq` seen: notes inserted meanwhile have a higher
    `seq` and never shift the pages that follow."""
    query = select(Note).where(Note.owner == owner).order_by(Note.seq.desc()).limit(limit + 1)
    if cursor is not None:
        query = query.where(Note.seq < decode_cursor(cursor))
    notes = list((await db.scalars(query)).all())
    next_cursor = encode_cursor(notes[limit - 1].seq) if len(notes) > limit else None
    return notes[:limit], next_cursor


async def update(db: AsyncSession, owner: str, note_id: str, data: NoteUpdate) -> Note:
    note = await get(db, owner, note_id)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    for field, value in changes.items():
        setattr(note, field, value)
    if changes:
        note.updated_at = utcnow()
    await db.flush()
    return note


async def delete(db: AsyncSession, owner: str, note_id: str) -> None:
    note = await get(db, owner, note_id)
    await db.delete(note)
    await db.flush()
