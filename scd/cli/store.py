"""CLI commands of this stage (filled in by its issue)."""

COMMANDS: list = []
