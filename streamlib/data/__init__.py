"""Chapter 2 (Multitrack data): the synthesised Slakh-format set, the Slakh2100 reader and example sampling.

``book_dataset()`` gives the book's synthesised set (made on first use); ``slakh.SlakhDataset`` reads it
and real Slakh2100 / babyslakh alike; ``sampling`` turns tracks into (input mixture, target stem) windows.
"""

from streamlib.data.synth import book_dataset

__all__ = ["book_dataset"]
