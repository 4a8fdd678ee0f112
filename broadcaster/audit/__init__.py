"""The audit trail: append-only and hash-chained (trail), and how it is checked (verification)."""
