"""Image reference normalisation, as container runtimes apply it.

CRI runtimes normalise a bare reference the way Docker does: ``busybox`` becomes
``docker.io/library/busybox:latest``. Tugboat always talks to the runtime in fully qualified
names so that lookups, pulls and comparisons agree.
"""

from __future__ import annotations

DEFAULT_DOMAIN = "docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"


def normalize_image(ref: str) -> str:
    """Return the fully qualified form of an image reference.

    ``busybox`` → ``docker.io/library/busybox:latest``; ``tugboat/web:1`` →
    ``docker.io/tugboat/web:1``; ``localhost/x`` → ``localhost/x:latest``; a reference with a
    digest (``name@sha256:...``) keeps its digest and gets no tag; an image id
    (``sha256:<hex>``) is returned unchanged.
    """
    ref = ref.strip()
    if not ref:
        raise ValueError("empty image reference")
    if ref.startswith("sha256:"):
        return ref
    name, digest = ref, ""
    if "@" in ref:
        name, digest = ref.split("@", 1)
        digest = "@" + digest
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        domain, path = DEFAULT_DOMAIN, name
        if "/" not in path:
            path = OFFICIAL_REPO_PREFIX + path
    else:
        domain, path = first, rest
    last = path.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        path += ":" + DEFAULT_TAG
    return f"{domain}/{path}{digest}"
