"""Progress bars (tqdm, on stderr) for long steps that are not an epoch table: parsing the
images, predicting, the fits of a search, the lr range test, photos.

    bar(total, desc, unit, **tqdm_options) -> tqdm    shown on a terminal only (see below)
    forced()                               -> bool | None   what $KFKD_PROGRESS asks for
    ENV = "KFKD_PROGRESS"                  "1": bars even when stderr is not a terminal,
                                           "0": never; unset (or anything else): terminals only
"""
from __future__ import annotations

import os

__all__ = ["ENV", "forced", "bar"]

ENV = "KFKD_PROGRESS"


def forced() -> bool | None:
    """``$KFKD_PROGRESS``: "1" shows progress bars even when stderr is not a terminal, "0"
    hides them; unset (or anything else): only on a terminal."""
    value = os.environ.get(ENV, "").strip()
    return {"1": True, "0": False}.get(value)


def bar(total=None, desc=None, unit="it", **kwargs):
    """A tqdm bar on stderr for a long step that is not an epoch table (parsing, predicting,
    fits of a search, the lr range test). Shown only on a terminal (tqdm's ``disable=None``
    checks stderr), after half a second (a quick step prints nothing), unless
    ``$KFKD_PROGRESS`` forces it on (at once) or off. Safe to update from several threads."""
    from tqdm import tqdm
    force = forced()
    options = dict(disable=None if force is None else not force, delay=0 if force else 0.5,
                   dynamic_ncols=True, leave=False)
    options.update(kwargs)
    return tqdm(total=total, desc=desc, unit=unit, **options)
