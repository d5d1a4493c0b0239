"""``python -m apiserver``: run one API server (also ``tug apiserver``)."""

from apiserver.main import main

if __name__ == "__main__":
    raise SystemExit(main())
