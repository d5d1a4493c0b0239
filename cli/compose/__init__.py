"""docker-compose files on tugboat: :mod:`load` reads a file (interpolation, ``env_file``),
:mod:`convert` turns the document into manifests (pure), :mod:`keys` lists what is supported."""
