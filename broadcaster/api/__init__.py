"""The HTTP face of the system (FastAPI)."""
