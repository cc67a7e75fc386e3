"""`python -m cner.cli ...`: the same as the `cner` command."""
from cner.cli import main

main()
