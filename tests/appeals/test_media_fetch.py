"""The media fetcher under attack: addresses, redirects, rebinding, size, time and type.

No test sends a packet anywhere but 127.0.0.1 (a workplace rule, and the point): refusals of
other addresses happen before connecting, which the injected resolver and a transport that fails
the test when used prove. The local server stands in for a platform; because it is itself on
loopback, the tests that fetch from it allow exactly its address and port.
"""

from __future__ import annotations

import io
import ipaddress
import socket
import threading
import time

import httpx
import pytest

from appeals.media import fetch
from appeals.media.fetch import (
    FetchFailed,
    FetchPolicy,
    ForbiddenDestination,
    TooLarge,
    TooManyRedirects,
    TooSlow,
    UnsafeAddress,
    UnsupportedMedia,
    fetch_media,
    why_not_public,
)
from tests.media_server import (
    MP4_HEADER,
    PNG,
    drip,
    loopback_client,
    media_server,
    redirect,
    serve_bytes,
)


def resolver(table: dict[str, list[str]]):
    calls = []

    def resolve(host, port):
        calls.append(host)
        if host not in table:
            raise socket.gaierror(f"no such host {host}")
        return table[host]

    resolve.calls = calls
    return resolve


class NoNetwork(httpx.BaseTransport):
    """A transport that fails the test if anything tries to connect."""

    def __init__(self):
        self.requests = []

    def handle_request(self, request):
        self.requests.append(request)
        raise AssertionError(f"a connection was attempted to {request.url.host}")


def no_network_client():
    transport = NoNetwork()
    return httpx.Client(transport=transport, follow_redirects=False), transport


def fetch_over_loopback(url, policy):
    """A real fetch over the network, held to loopback (see LoopbackOnly)."""
    with loopback_client() as client:
        return fetch_media(url, policy, client=client)


def allow_server(server, **overrides) -> FetchPolicy:
    allow = frozenset({(ipaddress.ip_address("127.0.0.1"), server.port)})
    return FetchPolicy(allow=allow, **overrides)


# --- which addresses are public -----------------------------------------------------------


@pytest.mark.parametrize(
    "address, reason",
    [
        ("10.0.0.5", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("100.64.0.1", "shared (CGNAT)"),
        ("224.0.0.251", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", ""),
        ("192.0.2.10", "private"),  # documentation range
        ("198.18.0.1", "private"),  # benchmarking range
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("::ffff:10.0.0.1", "IPv4-mapped private"),
        ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
        ("2002:7f00:1::1", "6to4 loopback"),
        ("2002:a9fe:a9fe::1", "6to4 link-local"),
        ("64:ff9b::a00:1", "NAT64"),
        ("2001:db8::1", ""),  # documentation
    ],
)
def test_non_public_addresses_are_named_and_refused(address, reason):
    why = why_not_public(ipaddress.ip_address(address))
    assert why is not None
    assert reason in why


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert why_not_public(ipaddress.ip_address(address)) is None


# --- refused before any connection --------------------------------------------------------


@pytest.mark.parametrize(
    "table, url, error, says",
    [
        (
            {"internal.example": ["10.0.0.5"]},
            "http://internal.example/p.png",
            ForbiddenDestination,
            "private address 10.0.0.5",
        ),
        (
            {"meta.example": ["169.254.169.254"]},
            "http://meta.example/latest/meta-data/",
            ForbiddenDestination,
            "link-local",
        ),
        (
            {"local.example": ["127.0.0.1"]},
            "https://local.example/p.png",
            ForbiddenDestination,
            "loopback",
        ),
        ({"v6.example": ["::1"]}, "http://v6.example/p.png", ForbiddenDestination, "loopback"),
        (
            {"mapped.example": ["::ffff:10.1.2.3"]},
            "http://mapped.example/",
            ForbiddenDestination,
            "IPv4-mapped private",
        ),
        (
            {"cgnat.example": ["100.100.1.1"]},
            "http://cgnat.example/",
            ForbiddenDestination,
            "CGNAT",
        ),
        # One bad answer among good ones is enough: the connection could go to either.
        (
            {"split.example": ["93.184.216.34", "10.0.0.5"]},
            "http://split.example/",
            ForbiddenDestination,
            "10.0.0.5",
        ),
        ({}, "http://10.0.0.1/p.png", ForbiddenDestination, "private address 10.0.0.1"),
        ({}, "http://169.254.169.254/latest/meta-data/", ForbiddenDestination, "link-local"),
        ({}, "http://[::1]/p.png", ForbiddenDestination, "loopback"),
        ({}, "http://[::ffff:7f00:1]/p.png", ForbiddenDestination, "IPv4-mapped loopback"),
        (
            {"cdn.example": ["93.184.216.34"]},
            "http://cdn.example:8080/p.png",
            UnsafeAddress,
            "port 8080 is not allowed",
        ),
        (
            {"cdn.example": ["93.184.216.34"]},
            "https://user:secret@cdn.example/p.png",
            UnsafeAddress,
            "credentials",
        ),
        ({}, "ftp://cdn.example/p.png", UnsafeAddress, "scheme 'ftp'"),
        ({}, "file:///etc/passwd", UnsafeAddress, "scheme 'file'"),
        ({}, "javascript:alert(1)", UnsafeAddress, "scheme 'javascript'"),
        ({}, "http:///p.png", UnsafeAddress, "no host"),
        ({}, "http://[::1/p.png", UnsafeAddress, "not a valid address"),
        (
            {"cdn.example": ["not-an-ip"]},
            "http://cdn.example/",
            ForbiddenDestination,
            "not an IP address",
        ),
    ],
)
def test_refused_destinations_never_see_a_connection(table, url, error, says):
    client, transport = no_network_client()
    with pytest.raises(error) as refused:
        fetch_media(url, FetchPolicy(resolver=resolver(table)), client=client)
    assert says in str(refused.value)
    assert transport.requests == []


def test_an_international_host_name_is_resolved_and_sent_in_its_ascii_form():
    seen = []

    def platform(request):
        seen.append(request.headers["host"])
        return httpx.Response(200, stream=httpx.ByteStream(PNG))

    resolve = resolver({"xn--bcher-kva.example": ["93.184.216.34"]})
    client = httpx.Client(transport=httpx.MockTransport(platform))
    fetch_media("https://bücher.example/p.png", FetchPolicy(resolver=resolve), client=client)
    assert seen == ["xn--bcher-kva.example"] and resolve.calls == ["xn--bcher-kva.example"]


def test_a_name_that_does_not_resolve_fails_cleanly():
    client, transport = no_network_client()
    with pytest.raises(FetchFailed, match="could not resolve nowhere.example"):
        fetch_media(
            "http://nowhere.example/p.png", FetchPolicy(resolver=resolver({})), client=client
        )
    assert transport.requests == []


def test_a_resolver_that_hangs_is_cut_off_by_the_time_limit():
    def slow(host, port):
        time.sleep(2)
        return ["93.184.216.34"]

    client, transport = no_network_client()
    started = time.monotonic()
    with pytest.raises(TooSlow, match="resolving it took longer"):
        fetch_media(
            "http://slow.example/", FetchPolicy(resolver=slow, timeout_seconds=0.5), client=client
        )
    assert time.monotonic() - started < 1.5
    assert transport.requests == []


# --- the connection goes to the checked address -------------------------------------------


def test_the_request_goes_to_the_checked_address_with_the_host_name_kept():
    seen = []

    def platform(request):
        seen.append(request)
        return httpx.Response(
            200, stream=httpx.ByteStream(PNG), headers={"Content-Type": "image/png"}
        )

    client = httpx.Client(transport=httpx.MockTransport(platform))
    resolve = resolver({"cdn.platform.example": ["93.184.216.34"]})
    media = fetch_media(
        "https://cdn.platform.example/img/p.png?x=1", FetchPolicy(resolver=resolve), client=client
    )
    assert media.mime == "image/png" and media.kind == "image"
    (request,) = seen
    assert request.url.host == "93.184.216.34"  # no second lookup by the HTTP client
    assert request.url.path == "/img/p.png" and request.url.query == b"x=1"
    assert request.headers["host"] == "cdn.platform.example"
    assert request.extensions["sni_hostname"] == "cdn.platform.example"  # TLS name check
    assert resolve.calls == ["cdn.platform.example"]


def test_dns_rebinding_cannot_move_the_connection_after_the_check():
    """The name answers public first and private afterwards: we resolve once per hop and
    connect to what we checked, so the private answer is never used."""
    answers = iter([["93.184.216.34"], ["10.0.0.5"], ["10.0.0.5"]])
    calls = []

    def rebinding(host, port):
        calls.append(host)
        return next(answers)

    seen = []

    def platform(request):
        seen.append(str(request.url.host))
        return httpx.Response(200, stream=httpx.ByteStream(PNG))

    client = httpx.Client(transport=httpx.MockTransport(platform))
    fetch_media("http://rebind.example/p.png", FetchPolicy(resolver=rebinding), client=client)
    assert calls == ["rebind.example"]
    assert seen == ["93.184.216.34"]


def test_a_redirect_to_a_rebound_name_is_checked_again():
    answers = {"first.example": ["93.184.216.34"], "second.example": ["10.0.0.5"]}
    seen = []

    def platform(request):
        seen.append(str(request.url.host))
        return httpx.Response(302, headers={"Location": "http://second.example/p.png"})

    client = httpx.Client(transport=httpx.MockTransport(platform))
    with pytest.raises(ForbiddenDestination, match="second.example: it resolves to a private"):
        fetch_media("http://first.example/", FetchPolicy(resolver=resolver(answers)), client=client)
    assert seen == ["93.184.216.34"]  # the first hop only


def test_proxies_from_the_environment_are_ignored(monkeypatch):
    with media_server() as proxy, media_server({"/p.png": serve_bytes(PNG)}) as server:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.origin)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        media = fetch_media(server.url("/p.png"), allow_server(server))  # the default client
        assert media.mime == "image/png"
        assert len(server.requests) == 1 and proxy.requests == []


# --- against a real server on loopback ----------------------------------------------------


def test_loopback_is_refused_by_default_even_for_a_live_server():
    with media_server({"/p.png": serve_bytes(PNG)}) as server:
        with pytest.raises(ForbiddenDestination, match="loopback address 127.0.0.1"):
            fetch_over_loopback(server.url("/p.png"), FetchPolicy())
        assert server.requests == []


def test_an_allowed_server_is_fetched_and_the_bytes_checked():
    with media_server({"/p.png": serve_bytes(PNG)}) as server:
        media = fetch_over_loopback(server.url("/p.png"), allow_server(server))
    assert media.content == PNG
    assert (media.mime, media.kind, media.width, media.height) == ("image/png", "image", 320, 180)
    assert server.requests[0]["headers"]["Accept-Encoding"] == "identity"


def test_the_allowance_is_for_that_port_only():
    with media_server() as other, media_server({"/go": None}) as server:
        server.routes["/go"] = redirect(other.url("/p.png"))
        with pytest.raises(ForbiddenDestination, match="loopback address 127.0.0.1"):
            fetch_over_loopback(server.url("/go"), allow_server(server))
        assert other.requests == []


@pytest.mark.parametrize(
    "location, says",
    [
        ("http://10.0.0.1/p.png", "private address 10.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/iam/", "link-local address 169.254.169.254"),
        ("http://[::1]/p.png", "loopback address ::1"),
        ("http://[::ffff:127.0.0.1]:80/p.png", "IPv4-mapped loopback"),
        ("http://internal.example/p.png", "private address 10.0.0.5"),
        ("http://0.0.0.0/p.png", "unspecified"),
    ],
)
def test_redirects_to_private_addresses_are_refused(location, says):
    # The injected resolver answers for internal.example; 127.0.0.1 is a literal, so the
    # allowed server itself needs no lookup.
    resolve = resolver({"internal.example": ["10.0.0.5"]})
    with media_server({"/go": redirect(location)}) as server:
        with pytest.raises(ForbiddenDestination, match=says):
            fetch_over_loopback(server.url("/go"), allow_server(server, resolver=resolve))
        assert [r["path"] for r in server.requests] == ["/go"]


def test_a_redirect_within_the_allowed_server_is_followed():
    with media_server({"/old": redirect("/p.png", 301), "/p.png": serve_bytes(PNG)}) as server:
        media = fetch_over_loopback(server.url("/old"), allow_server(server))
    assert media.redirects == 1
    assert [r["path"] for r in server.requests] == ["/old", "/p.png"]


def test_too_many_redirects_are_refused():
    with media_server({"/loop": redirect("/loop")}) as server:
        with pytest.raises(TooManyRedirects, match="more than 2 redirects"):
            fetch_over_loopback(server.url("/loop"), allow_server(server, max_redirects=2))
        assert len(server.requests) == 3


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read():
    def huge(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Content-Length", str(10 * 1024 * 1024 * 1024))
        handler.end_headers()
        handler.wfile.write(PNG)

    with media_server({"/huge": huge}) as server:
        with pytest.raises(TooLarge, match="Content-Length 10,737,418,240 bytes is over"):
            fetch_over_loopback(server.url("/huge"), allow_server(server, max_bytes=1024 * 1024))


def test_a_body_without_a_length_is_cut_off_at_the_limit():
    with media_server({"/endless": drip(1000, 0, body=b"x" * 8192)}) as server:
        with pytest.raises(TooLarge, match="passed the limit of 65,536 bytes"):
            fetch_over_loopback(server.url("/endless"), allow_server(server, max_bytes=65536))


def test_a_drip_fed_body_is_cut_off_at_the_total_time_limit():
    with media_server({"/drip": drip(100, 0.2)}) as server:
        started = time.monotonic()
        with pytest.raises(TooSlow, match="still arriving at the time limit"):
            fetch_over_loopback(server.url("/drip"), allow_server(server, timeout_seconds=1))
        assert time.monotonic() - started < 2


def test_a_server_that_never_answers_is_cut_off():
    release = threading.Event()

    def silent(handler):
        release.wait(5)

    with media_server({"/silent": silent}) as server:
        started = time.monotonic()
        with pytest.raises(TooSlow, match="no answer within the time limit"):
            fetch_over_loopback(server.url("/silent"), allow_server(server, timeout_seconds=1))
        assert time.monotonic() - started < 2
        release.set()


def test_an_error_status_is_a_failure_naming_it():
    with media_server() as server:
        with pytest.raises(FetchFailed, match="answered HTTP 404"):
            fetch_over_loopback(server.url("/missing.png"), allow_server(server))


@pytest.mark.parametrize(
    "body, header, says",
    [
        (
            b"<html><script>alert(1)</script></html>",
            "image/png",
            "not an image or video we accept (it said image/png)",
        ),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "image/svg+xml",
            "not an image or video",
        ),
        (b"%PDF-1.7\n", "image/jpeg", "not an image or video"),
        (b"", "image/png", "the body is empty"),
        (PNG[:40], "image/png", "not an image or video"),  # truncated
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "video/mp4", "not an image or video"),
    ],
)
def test_the_bytes_decide_the_type_not_the_header(body, header, says):
    with media_server({"/x": serve_bytes(body, header)}) as server:
        with pytest.raises(UnsupportedMedia, match=says.replace("(", r"\(").replace(")", r"\)")):
            fetch_over_loopback(server.url("/x"), allow_server(server))


def test_a_real_image_under_a_wrong_header_is_taken_for_what_it_is():
    with media_server({"/x": serve_bytes(PNG, "text/html")}) as server:
        media = fetch_over_loopback(server.url("/x"), allow_server(server))
    assert (media.mime, media.declared_type) == ("image/png", "text/html")


def test_a_video_is_recognised_from_its_container():
    with media_server({"/v": serve_bytes(MP4_HEADER, "application/octet-stream")}) as server:
        media = fetch_over_loopback(server.url("/v"), allow_server(server))
    assert (media.kind, media.mime) == ("video", "video/mp4")


def test_a_type_left_out_of_the_allowed_list_is_refused():
    with media_server({"/v": serve_bytes(MP4_HEADER, "video/mp4")}) as server:
        policy = allow_server(server, allowed_types=frozenset({"image/png"}))
        with pytest.raises(UnsupportedMedia, match="video/mp4 is not an allowed type"):
            fetch_over_loopback(server.url("/v"), policy)


def test_a_decompression_bomb_is_refused_by_its_pixel_count():
    from PIL import Image

    out = io.BytesIO()
    Image.new("1", (8000, 8000)).save(out, format="PNG")  # 64 megapixels in a few kB
    bomb = out.getvalue()
    assert len(bomb) < 100_000
    with media_server({"/bomb.png": serve_bytes(bomb)}) as server:
        with pytest.raises(UnsupportedMedia, match="8000×8000 pixels is over the limit"):
            fetch_over_loopback(
                server.url("/bomb.png"), allow_server(server, max_pixels=10_000_000)
            )


def test_allow_entries_are_parsed_strictly():
    allow = FetchPolicy.parse_allow(["127.0.0.1:8080", " [fd00::8]:443 ", ""])
    assert allow == {
        (ipaddress.ip_address("127.0.0.1"), 8080),
        (ipaddress.ip_address("fd00::8"), 443),
    }
    for bad in ("media.internal:80", "10.0.0.1", "10.0.0.1:http"):
        with pytest.raises(ValueError, match="not"):
            FetchPolicy.parse_allow([bad])


def test_every_refusal_is_a_media_refused_with_a_reason():
    for error in (
        FetchFailed,
        ForbiddenDestination,
        TooLarge,
        TooManyRedirects,
        TooSlow,
        UnsafeAddress,
        UnsupportedMedia,
    ):
        assert issubclass(error, fetch.MediaRefused)
        assert error.reason != fetch.MediaRefused.reason


def test_an_unreachable_allowed_port_fails_cleanly():
    # A port we just closed: the connection is refused, on loopback.
    with media_server() as server:
        port = server.port
    policy = FetchPolicy(allow=frozenset({(ipaddress.ip_address("127.0.0.1"), port)}))
    with pytest.raises(FetchFailed, match="could not fetch from 127.0.0.1"):
        fetch_over_loopback(f"http://127.0.0.1:{port}/p.png", policy)
