"""custscore serving layer (see DESIGN.md)."""
