"""``python -m pipeline ...``: the `pipeline` command where its console script is not on PATH (a
`pip install --user` without ~/.local/bin, a container or module environment)."""
import sys

from pipeline.cli import main

sys.exit(main())
