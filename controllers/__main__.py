"""``python -m controllers``: the controller-manager (see :mod:`controllers.manager`)."""

from controllers.manager import main

raise SystemExit(main())
