"""The interfaces the domain needs from the outside, one capability a module."""
