"""The executed copies here are outputs of ``python -m streamlib book build --executed book/executed``, for
reading on the forge; the tests run the source notebooks (``book/NN_*.ipynb``), not these copies."""

collect_ignore_glob = ["*.ipynb", "*/*.ipynb"]
