"""Feature families: one module per family, each declaring its columns, expressions and sentences.

features/catalog.py gathers them; adding a family is adding a module here and listing its
FAMILY in the catalog.
"""
