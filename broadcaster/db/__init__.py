"""The database: engine and sessions, column types, the bulk writer, and the migrations."""
