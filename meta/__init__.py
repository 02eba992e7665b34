"""Initialisations registry and MAML-family methods built on learn2learn."""

import contextlib
import io

# learn2learn imports gym (unused here), whose import prints an "unmaintained" notice to stderr on
# every start; import it once, quietly, before any module of this package does. Errors still raise.
with contextlib.redirect_stderr(io.StringIO()):
    import learn2learn  # noqa: F401
