"""kubectl-modelreg: the command-line experience (a kubectl plugin)."""
