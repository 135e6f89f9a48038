"""The resource server's tables (its own database, its own migrations)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.service.db import UTCDateTime, make_metadata, utcnow

BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = make_metadata()


class Note(Base):
    __tablename__ = "notes"
    __table_args__ = (Index("ix_notes_owner_seq", "owner", "seq"),)

    # `seq` only grows, so "newest first, after cursor N" is `seq < N`: stable under inserts.
    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)  # the public id (uuid4)
    owner: Mapped[str] = mapped_column(String(128))  # the token's `sub`
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
