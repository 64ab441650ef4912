"""The limits a client can run into, in one place: the validators (``chat/checks.py``, the msgspec
and pydantic wire models) enforce them and ``/openapi.json`` states them, from the same values,
so the documentation cannot drift from the checks."""

from __future__ import annotations

import re

ROOM_ID_PATTERN = r"[A-Za-z0-9_.:~-]{1,64}"
ROOM_ID_RE = re.compile(ROOM_ID_PATTERN)
MAX_MESSAGE_CHARS = 4000  # the default of ``--max-message-chars``
MAX_CLIENT_MSG_ID = 128
MAX_ROOM_NAME = 100
MAX_REACTION_CHARS = 32
MAX_PASSWORD_CHARS = 256
# A username is checked after NFKC normalisation (``auth/names.py``); this bounds the raw text.
MAX_RAW_USERNAME_CHARS = 128
