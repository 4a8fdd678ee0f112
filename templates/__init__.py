"""Message templates per channel and language, their renderer, and SMS encoding rules."""
