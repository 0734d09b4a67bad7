"""Adapters: one package per outside thing. Only handlers/bootstrap.py imports them."""
