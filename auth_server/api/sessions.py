"""Placeholder router: filled in by the sessions/revocation work (issue 4)."""

from fastapi import APIRouter

router = APIRouter()
