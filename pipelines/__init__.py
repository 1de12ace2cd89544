"""custscore pipelines layer (see DESIGN.md)."""
