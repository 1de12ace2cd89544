"""custscore pipelines layer (see docs/DESIGN.md)."""
