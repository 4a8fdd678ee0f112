"""Routes for staff."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["staff"])
