"""The training command of geoai: `python -m train` (experiment grid, evaluate, publish).

See train/cli.py for the commands and train/grid.py for what a run does.
"""
