"""Who is typing: the :class:`~hubbub.typing.base.Typing` protocol and its backends.

(The package shares its last name with the standard library's ``typing``; imports are
absolute, so ``from typing import ...`` anywhere, this package included, is the stdlib's.)
"""

from hubbub.typing.base import Typing, TypingCallback, open_typing

__all__ = ["Typing", "TypingCallback", "open_typing"]
