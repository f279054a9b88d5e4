"""`python -m torchlint ...` works like `torchlint ...`."""

from torchlint.cli import main

raise SystemExit(main())
