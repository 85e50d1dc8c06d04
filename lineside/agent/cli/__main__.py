"""`python -m lineside.agent.cli`: the `lineside` console script."""

from lineside.agent.cli import main

raise SystemExit(main())
