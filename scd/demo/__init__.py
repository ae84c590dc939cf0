"""The bundled offline demo model (filled in by its issue)."""
