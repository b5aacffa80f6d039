"""`python -m xorc`."""

from xorc.cli import main

main()
