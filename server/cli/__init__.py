"""`askta`: one module per command group; main.py holds the group and registers them."""
