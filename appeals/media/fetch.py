"""Fetching a platform's image or video on the server, so no reviewer's browser ever does.

The platform sends an address; whoever controls that address (or the DNS behind it) is the
adversary here. They may point it at the console's own network: a cloud metadata endpoint
(169.254.169.254), the database, an admin port on loopback, a redirect to any of those, or a
name that resolves to a public address when checked and a private one when used (DNS rebinding).
They may send an endless body, drip it a byte a second, or label an HTML page `image/png`.

So, for every hop (the first request and each redirect, at most `max_redirects` of them):
- only http and https, no user:password@ in the address, only the allowed ports;
- the host is resolved here, and every address it resolves to must be public (not private,
  loopback, link-local, multicast, reserved, unspecified, shared/CGNAT, site-local, nor an
  IPv4-mapped, 6to4 or Teredo wrapping of one of those): one bad answer refuses the hop;
- the connection goes to the address that was checked (the URL is rewritten to the IP; the Host
  header and the TLS server name stay the original name, so virtual hosting and certificate
  checks work), so a second DNS answer cannot change where it goes; proxies from the
  environment are ignored for the same reason;
- one deadline for the whole fetch (DNS, connects, redirects and body), checked before each hop
  and after every read; each network wait is itself capped at the time left when its request
  started, so a server that stalls ends the fetch by twice the limit at the very worst;
- a size limit checked against Content-Length before reading and against the bytes while
  streaming (bodies are asked for uncompressed, so what is counted is what is kept);
- what the bytes are is decided from the bytes (Pillow for images, the container's signature for
  video), never from the Content-Type header.

Every refusal raises a `MediaRefused` subclass whose message says what was refused and why, and
names the host only, never the whole address. Nothing here imports Django: the limits come in as
a `FetchPolicy`.
"""

from __future__ import annotations

import concurrent.futures
import io
import ipaddress
import socket
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Pillow's format name -> the MIME type we store and serve.
IMAGE_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
VIDEO_TYPES = ("video/mp4", "video/webm")
DEFAULT_ALLOWED_TYPES = frozenset({*IMAGE_TYPES.values(), *VIDEO_TYPES})
# 100.64.0.0/10 is carrier-grade NAT: not global, and not "private" in every Python version.
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
# NAT64 prefixes carry an IPv4 address in their last 32 bits: check that address too.
NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
USER_AGENT = "AppealsCopilot-media-fetch/1"


class MediaRefused(Exception):
    """The media was not fetched or not accepted. `reason` is a short machine-readable word."""

    reason = "refused"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UnsafeAddress(MediaRefused):
    """The address itself is refused: scheme, credentials, port, or not an address at all."""

    reason = "unsafe_address"


class ForbiddenDestination(MediaRefused):
    """The host resolves to an address the console must not connect to."""

    reason = "forbidden_destination"


class TooManyRedirects(MediaRefused):
    reason = "too_many_redirects"


class TooLarge(MediaRefused):
    reason = "too_large"


class TooSlow(MediaRefused):
    reason = "too_slow"


class UnsupportedMedia(MediaRefused):
    """The bytes are not an image or video of an allowed type (whatever the header said)."""

    reason = "unsupported_type"


class FetchFailed(MediaRefused):
    """The platform did not hand the media over: connection error, TLS error, an error status."""

    reason = "fetch_failed"


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int = 20 * 1024 * 1024
    timeout_seconds: float = 15.0
    max_redirects: int = 3
    allowed_ports: frozenset[int] = frozenset({80, 443})
    allowed_types: frozenset[str] = DEFAULT_ALLOWED_TYPES
    max_pixels: int = 40_000_000
    # Exceptions to the public-only rule, as (address, port) pairs: a platform whose media server
    # is on a private network, or a test server on loopback. Only that address on that port.
    allow: frozenset[tuple[IPAddress, int]] = frozenset()
    resolver: Resolver | None = field(default=None, compare=False)

    @staticmethod
    def parse_allow(entries: Iterable[str]) -> frozenset[tuple[IPAddress, int]]:
        """'10.0.0.8:8080' or '[fd00::8]:443' -> (address, port); anything else is an error."""
        pairs = set()
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue
            host, sep, port = entry.rpartition(":")
            if not sep or not port.isdigit():
                raise ValueError(f"{entry!r} is not ADDRESS:PORT")
            try:
                address = ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                raise ValueError(f"{entry!r}: {host!r} is not an IP address") from None
            pairs.add((address, int(port)))
        return frozenset(pairs)


@dataclass(frozen=True)
class FetchedMedia:
    content: bytes
    mime: str  # sniffed from the bytes
    kind: str  # "image" or "video"
    width: int | None
    height: int | None
    declared_type: str  # what the Content-Type header said, for the record only
    host: str  # the host the bytes finally came from (after redirects)
    redirects: int


# --- addresses ----------------------------------------------------------------------------


def why_not_public(address: IPAddress) -> str | None:
    """The reason this address is refused, or None when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        for wrapped, label in (
            (address.ipv4_mapped, "IPv4-mapped"),
            (address.sixtofour, "6to4"),
            (address.teredo[1] if address.teredo else None, "Teredo"),
        ):
            if wrapped is not None:
                inner = why_not_public(wrapped)
                if inner:
                    return f"{label} {inner}"
        for prefix in NAT64_PREFIXES:
            if address in prefix:
                inner = why_not_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
                return f"NAT64 {inner or 'translated address ' + str(address)}"
        if address.is_site_local:
            return "site-local"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("shared (CGNAT)", address in SHARED_ADDRESS_SPACE),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    )
    for label, hit in checks:
        if hit:
            return f"{label} address {address}"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


_resolver_pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="dns")


def _resolve(host: str, port: int, policy: FetchPolicy, deadline: float) -> list[IPAddress]:
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        return [literal]
    resolver = policy.resolver or system_resolver
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TooSlow(f"refused {host}: no time left to resolve it")
    # getaddrinfo has no timeout of its own: wait for it in a thread, up to the deadline.
    future = _resolver_pool.submit(resolver, host, port)
    try:
        answers = future.result(timeout=remaining)
    except concurrent.futures.TimeoutError:
        raise TooSlow(f"refused {host}: resolving it took longer than the time limit") from None
    except (OSError, UnicodeError) as error:
        raise FetchFailed(f"could not resolve {host}: {error}") from None
    addresses = []
    for answer in answers:
        try:
            addresses.append(ipaddress.ip_address(answer.split("%", 1)[0]))
        except ValueError:
            raise ForbiddenDestination(
                f"refused {host}: the resolver answered {answer!r}, not an IP address"
            ) from None
    if not addresses:
        raise FetchFailed(f"could not resolve {host}: no addresses")
    return addresses


@dataclass(frozen=True)
class _Hop:
    url: str  # as the platform wrote it (host name kept)
    host: str
    port: int
    scheme: str
    address: IPAddress  # where we connect


def check_destination(url: str, policy: FetchPolicy, *, deadline: float) -> _Hop:
    """Everything that must hold before a connection is opened to `url`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeAddress(f"refused: not a valid address ({error})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeAddress(f"refused: scheme {scheme or '(none)'!r} (only http and https)")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeAddress("refused: the address has no host")
    try:
        host = host.encode("idna").decode("ascii")  # the name as DNS and the Host header see it
    except UnicodeError:
        raise UnsafeAddress(f"refused: {host!r} is not a valid host name") from None
    if parts.username is not None or parts.password is not None:
        raise UnsafeAddress(f"refused {host}: the address carries credentials")
    port = port or (443 if scheme == "https" else 80)
    addresses = _resolve(host, port, policy, deadline)
    for address in addresses:
        if (address, port) in policy.allow:
            continue
        reason = why_not_public(address)
        if reason:
            raise ForbiddenDestination(f"refused {host}: it resolves to a {reason}")
        if port not in policy.allowed_ports:
            raise UnsafeAddress(
                f"refused {host}: port {port} is not allowed "
                f"(allowed: {', '.join(map(str, sorted(policy.allowed_ports)))})"
            )
    return _Hop(url=url, host=host, port=port, scheme=scheme, address=addresses[0])


# --- fetching -----------------------------------------------------------------------------


def _pinned_request(client: httpx.Client, hop: _Hop, timeout: float) -> httpx.Request:
    parts = urlsplit(hop.url)
    ip = f"[{hop.address}]" if hop.address.version == 6 else str(hop.address)
    default_port = 443 if hop.scheme == "https" else 80
    netloc = ip if hop.port == default_port else f"{ip}:{hop.port}"
    target = parts._replace(scheme=hop.scheme, netloc=netloc, fragment="").geturl()
    host_header = hop.host if hop.port == default_port else f"{hop.host}:{hop.port}"
    if ":" in hop.host:  # an IPv6 literal
        host_header = f"[{hop.host}]" + ("" if hop.port == default_port else f":{hop.port}")
    return client.build_request(
        "GET",
        target,
        headers={
            "Host": host_header,
            "Accept": "image/*, video/*",
            # Compressed bodies would need decoding before the size check could see their size.
            "Accept-Encoding": "identity",
            "User-Agent": USER_AGENT,
        },
        timeout=httpx.Timeout(timeout),
        extensions={"sni_hostname": hop.host},  # TLS: name and certificate check use the host
    )


def new_client() -> httpx.Client:
    # trust_env=False: an HTTP(S)_PROXY from the environment would connect elsewhere.
    return httpx.Client(follow_redirects=False, trust_env=False)


def fetch_media(
    url: str, policy: FetchPolicy, *, client: httpx.Client | None = None
) -> FetchedMedia:
    """Fetch `url` under `policy` and return the checked bytes, or raise `MediaRefused`."""
    deadline = time.monotonic() + policy.timeout_seconds
    own_client = client is None
    if client is None:
        client = new_client()
    try:
        current = url
        for redirects in range(policy.max_redirects + 1):
            hop = check_destination(current, policy, deadline=deadline)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TooSlow(f"refused {hop.host}: the time limit passed")
            request = _pinned_request(client, hop, remaining)
            try:
                response = client.send(request, stream=True)
            except httpx.TimeoutException:
                raise TooSlow(f"refused {hop.host}: no answer within the time limit") from None
            except httpx.HTTPError as error:
                raise FetchFailed(f"could not fetch from {hop.host}: {error}") from None
            try:
                if response.status_code in REDIRECT_STATUSES:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchFailed(f"{hop.host} redirected without a Location")
                    current = urljoin(hop.url, location)
                    continue
                if response.status_code != 200:
                    raise FetchFailed(f"{hop.host} answered HTTP {response.status_code}")
                body = _read_limited(response, hop, policy, deadline)
                declared = response.headers.get("content-type", "")
            finally:
                response.close()
            return sniff(body, policy, declared_type=declared, host=hop.host, redirects=redirects)
        raise TooManyRedirects(
            f"refused: more than {policy.max_redirects} redirects (last from {hop.host})"
        )
    finally:
        if own_client:
            client.close()


def _read_limited(
    response: httpx.Response, hop: _Hop, policy: FetchPolicy, deadline: float
) -> bytes:
    declared_length = response.headers.get("content-length")
    if declared_length and declared_length.isdigit() and int(declared_length) > policy.max_bytes:
        raise TooLarge(
            f"refused {hop.host}: Content-Length {int(declared_length):,} bytes is over "
            f"the limit of {policy.max_bytes:,}"
        )
    chunks, size = [], 0
    try:
        for chunk in response.iter_raw():  # as it arrives: a chunk size would buffer a drip
            size += len(chunk)
            if size > policy.max_bytes:
                raise TooLarge(
                    f"refused {hop.host}: the body passed the limit of {policy.max_bytes:,} bytes"
                )
            if time.monotonic() > deadline:
                raise TooSlow(
                    f"refused {hop.host}: the body was still arriving at the time limit "
                    f"({policy.timeout_seconds:g} s)"
                )
            chunks.append(chunk)
    except httpx.TimeoutException:
        raise TooSlow(f"refused {hop.host}: the body stopped arriving") from None
    except httpx.HTTPError as error:
        raise FetchFailed(f"could not read from {hop.host}: {error}") from None
    return b"".join(chunks)


# --- what the bytes are -------------------------------------------------------------------


def _video_type(data: bytes) -> str | None:
    # ISO base media (MP4, and QuickTime's close cousin): a box size, then 'ftyp' and a brand.
    if len(data) >= 12 and data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"qt  ",):
            return None  # QuickTime: browsers play it unreliably; not accepted
        return "video/mp4"
    # Matroska/WebM: the EBML magic, and the doctype 'webm' in the header.
    if data[:4] == b"\x1a\x45\xdf\xa3" and b"webm" in data[:64]:
        return "video/webm"
    return None


def sniff(
    data: bytes,
    policy: FetchPolicy,
    *,
    declared_type: str = "",
    host: str = "",
    redirects: int = 0,
) -> FetchedMedia:
    """Decide from the bytes what this is; refuse it unless it is an allowed image or video."""
    from PIL import Image, UnidentifiedImageError

    where = f" from {host}" if host else ""
    if not data:
        raise UnsupportedMedia(f"refused{where}: the body is empty")
    video = _video_type(data)
    if video is not None:
        if video not in policy.allowed_types:
            raise UnsupportedMedia(f"refused{where}: {video} is not an allowed type")
        return FetchedMedia(data, video, "video", None, None, declared_type, host, redirects)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image_format = image.format or ""
                width, height = image.size
                if width * height > policy.max_pixels:
                    raise UnsupportedMedia(
                        f"refused{where}: {width}×{height} pixels is over the limit of "
                        f"{policy.max_pixels:,}"
                    )
                image.verify()
    except UnsupportedMedia:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UnsupportedMedia(f"refused{where}: the image would decompress too large") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        said = f" (it said {declared_type.split(';')[0]})" if declared_type else ""
        raise UnsupportedMedia(
            f"refused{where}: the bytes are not an image or video we accept{said}: {error}"
        ) from None
    mime = IMAGE_TYPES.get(image_format)
    if mime is None or mime not in policy.allowed_types:
        raise UnsupportedMedia(f"refused{where}: {image_format or 'this'} image is not allowed")
    return FetchedMedia(data, mime, "image", width, height, declared_type, host, redirects)
