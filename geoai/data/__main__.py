"""Entry point of `python -m geoai.data`."""
import sys

from geoai.data.cli import main

sys.exit(main())
