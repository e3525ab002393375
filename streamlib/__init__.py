"""streamlib: streaming generation for music accompaniment, the library behind the book in ``book/``.

Data flows one way: audio -> codes (``codec``) -> delay pattern and t_f alignment (``tokens``) ->
model (``model``) -> streamed chunks (``stream``) -> audio -> metrics (``metrics``).
Every module's docstring names the chapter that explains it.
"""

__version__ = "0.1.0"
