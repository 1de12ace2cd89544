"""UCI Online Retail real-data benchmark."""
