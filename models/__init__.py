"""custscore models layer (see DESIGN.md)."""
