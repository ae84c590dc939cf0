"""`scd doctor`: what is installed, what is reachable, where things live."""

COMMANDS: list = []
