"""Training entry points, one module per learned stage."""
