"""giis."""
