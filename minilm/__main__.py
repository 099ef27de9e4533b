"""``python -m minilm``: the command line (also what torchrun launches: ``torchrun ... -m minilm train``)."""

from minilm.cli import main

raise SystemExit(main())
