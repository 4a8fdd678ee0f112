"""The one ASGI app that serves the JSON API and the pages, and what both share."""
