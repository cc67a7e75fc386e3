"""`python -m cner ...`: the same as the `cner` command."""
from cner.cli import main

main()
