"""Command-line entry points: the only code that touches the global reactor."""
