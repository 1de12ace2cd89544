"""custscore features layer (see DESIGN.md)."""
