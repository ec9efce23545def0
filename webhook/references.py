"""Image references as a registry accepts them, checked before any request is made.

:func:`minerguard.images.parse` reads references for matching (lower-cased, never raising);
fetching needs the distribution grammar exactly: tags are case-sensitive, repositories are
lower-case path components, digests are ``sha256:<64 hex>``. Anything else (hostile strings,
path tricks) is refused here, so it never becomes a URL.
"""

from __future__ import annotations

import functools
import re

from minerguard import images
from minerguard.oci.registry import BadImage

_HOST = re.compile(
    r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[0-9]{1,5})?|\[[0-9a-f:]+\](?::[0-9]{1,5})?"
)
_REPOSITORY = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
MAX_REFERENCE_CHARS = 512


@functools.lru_cache(maxsize=4096)
def reference(image: str) -> images.ImageRef:
    """A pullable reference, strictly by the distribution grammar; raises BadImage.

    :func:`minerguard.images.parse` lower-cases everything for matching; tags are
    case-sensitive in a registry, so the tag is taken from the reference as written.
    """
    text = image.strip()
    if not text or len(text) > MAX_REFERENCE_CHARS or not text.isascii():
        raise BadImage(f"image reference {image[:80]!r} is not valid")
    parsed = images.parse(text)
    rest = text.split("@", 1)[0]
    tag = rest[rest.rfind(":") + 1 :] if rest.rfind(":") > rest.rfind("/") else None
    name = rest[: rest.rfind(":")] if tag is not None else rest
    first, sep, remainder = name.partition("/")
    on_host = sep and ("." in first or ":" in first or first.lower() == "localhost")
    written = remainder if on_host else name
    valid = (
        _HOST.fullmatch(parsed.registry) is not None
        and _REPOSITORY.fullmatch(parsed.repository) is not None
        and written == written.lower()
        and (tag is None or _TAG.fullmatch(tag) is not None)
        and (parsed.digest is None or _DIGEST.fullmatch(parsed.digest) is not None)
    )
    if not valid:
        raise BadImage(f"image reference {image[:80]!r} is not valid")
    return images.ImageRef(parsed.registry, parsed.repository, tag, parsed.digest)
