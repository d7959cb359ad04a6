"""``python -m triolet`` is the ``triolet`` command."""

from ._cli import main

main()
