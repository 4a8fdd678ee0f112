"""The Celery app and its tasks: thin wrappers that call into broadcaster."""
