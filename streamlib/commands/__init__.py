"""Subcommands of ``python -m streamlib``; one module each, discovered by ``streamlib.cli``.

Modules here must import their heavy dependencies inside the command function, so that
``python -m streamlib --help`` stays fast.
"""
