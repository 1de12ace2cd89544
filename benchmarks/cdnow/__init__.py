"""CDNOW real-data benchmark: custscore against BG/NBD + Gamma-Gamma and a naive reference."""
