"""The benchmark: `bin/bench` runs `python -m bench` (run.py), which starts the fake
tenant in its own process and runs every measured phase (phases.py) in a fresh Odoo process;
report.py turns the results into the table with the targets P1-P8."""
