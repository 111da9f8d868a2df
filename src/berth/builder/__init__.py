"""Building images from Dockerfiles (the classic builder's semantics)."""
