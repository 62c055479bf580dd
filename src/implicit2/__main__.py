"""`python -m implicit2 …` entry point."""

from implicit2.cli import main

raise SystemExit(main())
