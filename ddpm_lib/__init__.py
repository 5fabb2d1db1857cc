"""ddpm_lib: the thin library behind the diffusion reproduction book.

One concept per module; see the book's "Running the book" page and DESIGN.md for the map.
"""
__version__ = "0.1.0"
