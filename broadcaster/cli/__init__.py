"""The command line (`broadcaster ...`)."""
