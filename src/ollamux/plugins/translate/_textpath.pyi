def reframe(
    data: bytes,
    sep: bytes,
    head: bytes,
    anchored: bool,
    tail: bytes,
    before: bytes,
    after: bytes,
    number: int = -1,
    end: bytes = b"",
) -> bytes | None: ...
