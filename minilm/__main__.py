"""``python -m minilm``: the command line (also what torchrun launches: ``torchrun ... -m minilm train``)."""

from .cli import main

raise SystemExit(main())
