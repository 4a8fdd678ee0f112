"""Reference data: Warsaw's districts, the topics residents follow, and our languages."""
