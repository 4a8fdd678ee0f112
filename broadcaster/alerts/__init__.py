"""Alerts: their tables, lifecycle and services, follow-ups, idempotent creation, and how
their texts render per channel and language."""
