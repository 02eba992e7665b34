"""The seed's raw XuetangX activity JSON, read as a stream: one user-in-course value at a time."""

from __future__ import annotations

import json

from bench.core.errors import BenchError

_DECODER = json.JSONDecoder()


class JsonStream:
    """Incremental reader of one large JSON document: values are decoded one at a time from a buffer
    that only ever holds the value being decoded (plus one read chunk)."""

    def __init__(self, handle, label: str, chunk_chars: int = 1 << 20):
        self.handle, self.label, self.chunk = handle, label, chunk_chars
        self.buf, self.pos, self.base, self.eof = "", 0, 0, False

    def where(self) -> int:
        return self.base + self.pos

    def fail(self, problem: str, truncated: bool = False):
        if truncated:
            raise BenchError(
                f"truncated JSON in {self.label} at character {self.where():,}: the file ends {problem}",
                "the file is incomplete; download or copy it again",
            )
        raise BenchError(
            f"malformed JSON in {self.label} at character {self.where():,}: {problem}",
            "the file must be a JSON array of [course_id, {user_id: {session: [[event, time], ...]}}]",
        )

    def _read(self, at_least: int = 0) -> bool:
        if self.eof:
            return False
        if self.pos:
            self.base += self.pos
            self.buf, self.pos = self.buf[self.pos :], 0
        data = self.handle.read(max(self.chunk, at_least))
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def peek(self, context: str) -> str:
        """The next non-space character (not consumed); fails as truncated at the end of the file."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._read():
                self.fail(context, truncated=True)

    def closes(self, close: str, context: str, between: str) -> bool:
        """After an element: consume ``close`` (True) or ',' (False); anything else is an error."""
        sep = self.peek(context)
        self.pos += 1
        if sep == close:
            return True
        if sep != ",":
            self.pos -= 1
            self.fail(f"expected ',' or '{close}' between {between}, found {sep!r}")
        return False

    def expect(self, char: str, context: str) -> None:
        found = self.peek(context)
        if found != char:
            self.fail(f"expected {char!r} {context}, found {found!r}")
        self.pos += 1

    def value(self, context: str):
        self.peek(context)
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.buf, self.pos)
                self.pos = end
                return obj
            except json.JSONDecodeError as err:
                incomplete = err.pos >= len(self.buf) - 1 or err.msg.startswith("Unterminated string")
                if not incomplete:
                    self.pos = err.pos
                    self.fail(f"{err.msg} {context}")
                # doubling the read keeps a long value linear in its size
                if not self._read(at_least=len(self.buf) - self.pos):
                    self.fail(context, truncated=True)


def iter_activity(handle, label: str, chunk_chars: int = 1 << 20):
    """Yield (course_id, user_id, {session: [[event, time], ...]}) from the activity array, one user at a time."""
    stream = JsonStream(handle, label, chunk_chars)
    stream.expect("[", "at the start of the file")
    if stream.peek("inside the top-level array") == "]":
        return
    while True:
        stream.expect("[", "where a course element should start")
        course = stream.value("while reading a course id")
        if not isinstance(course, (str, int)):
            stream.fail(f"course id must be a string, found {type(course).__name__}")
        stream.expect(",", "after the course id")
        stream.expect("{", "where the course's users should open")
        if stream.peek("inside a course's users") == "}":
            stream.pos += 1
        else:
            while True:
                user = stream.value("while reading a user id")
                if not isinstance(user, str):
                    stream.fail("user ids must be object keys (strings)")
                stream.expect(":", "after a user id")
                sessions = stream.value(f"while reading user {user!r} of course {course!r}")
                if not isinstance(sessions, dict):
                    stream.fail(f"user {user!r} must map to an object of sessions")
                yield str(course), user, sessions
                if stream.closes("}", "inside a course's users", "users"):
                    break
        stream.expect("]", "where a course element should close")
        if stream.closes("]", "inside the top-level array", "course elements"):
            break
    # only whitespace may follow the array
    while stream.pos < len(stream.buf) or stream._read():
        rest = stream.buf[stream.pos :].strip()
        if rest:
            stream.fail("unexpected data after the end of the array")
        stream.pos = len(stream.buf)
