"""custscore features layer (see docs/DESIGN.md)."""
