"""The input's edge of the features layer: reading source files safely."""
