"""custscore serving layer (see docs/DESIGN.md)."""
