"""gris."""
