"""The CLI's pure protocol pieces: HTTP response heads, chunked bodies, stream frames,
JSON message streams, host addresses and image references."""

import io

import pytest

from berth.cli.progress import StreamError, display_stream, progress_string
from berth.client.engine import (
    ChunkedDecoder,
    ClientError,
    FrameDecoder,
    daemon_message,
    encode_frame,
    filters_json,
    iter_json_stream,
    parse_host,
    parse_response_head,
)
from berth.images.reference import ReferenceError, familiar_string, parse_normalized, split_repo_tag


def test_response_head() -> None:
    head = parse_response_head(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: x\r\nUpgrade: tcp\r\nA: 1\r\na: 2")
    assert head.status == 101 and head.reason == "UPGRADED"
    assert head.header("content-type") == "x"
    assert head.header("A") == "1, 2"
    with pytest.raises(ClientError):
        parse_response_head(b"garbage")


def test_chunked_decoder_handles_any_split() -> None:
    body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\n"
    for split in range(1, len(body)):
        dec = ChunkedDecoder()
        out = dec.feed(body[:split]) + dec.feed(body[split:])
        assert out == b"Wikipedia" and dec.done


def test_frame_decoder_reassembles_frames() -> None:
    stream = encode_frame(1, b"out\n") + encode_frame(2, b"err\n") + encode_frame(1, b"")
    dec = FrameDecoder()
    frames = []
    for i in range(len(stream)):
        frames += dec.feed(stream[i : i + 1])
    assert frames == [(1, b"out\n"), (2, b"err\n"), (1, b"")]
    assert dec.pending == 0
    assert dec.feed(b"\x01\x00\x00") == [] and dec.pending == 3


def test_json_stream_across_chunks() -> None:
    chunks = [b'{"status":"a"}\r\n{"sta', b'tus":"b"}', b"\n", '{"s":"é"}'.encode()[:7], '{"s":"é"}'.encode()[7:]]
    assert list(iter_json_stream(iter(chunks))) == [{"status": "a"}, {"status": "b"}, {"s": "é"}]
    with pytest.raises(ClientError):
        list(iter_json_stream(iter([b'{"a":'])))


def test_daemon_message() -> None:
    assert daemon_message(b'{"message":"No such container: x"}\n', 404, "Not Found") == "No such container: x"
    assert daemon_message(b"plain text\n", 500, "x") == "plain text"
    assert daemon_message(b"", 502, "Bad Gateway") == "Bad Gateway"


def test_filters_json() -> None:
    assert filters_json([]) is None
    assert filters_json([("status", "exited"), ("status", "created"), ("name", "a")]) == (
        '{"status":{"exited":true,"created":true},"name":{"a":true}}'
    )


def test_parse_host() -> None:
    assert parse_host("unix:///run/berth/berth.sock") == ("unix", "/run/berth/berth.sock")
    assert parse_host("tcp://127.0.0.1:2375") == ("tcp", ("127.0.0.1", 2375))
    assert parse_host("tcp://[::1]:2376") == ("tcp", ("::1", 2376))
    with pytest.raises(ClientError):
        parse_host("ssh://x")


def test_references() -> None:
    ref = parse_normalized("busybox")
    assert (ref.domain, ref.path, ref.tag) == ("docker.io", "library/busybox", "")
    assert ref.with_default_tag().familiar_string() == "busybox:latest"
    assert parse_normalized("localhost:5000/foo/bar:1.0").name == "localhost:5000/foo/bar"
    assert familiar_string("docker.io/library/busybox:latest") == "busybox:latest"
    assert familiar_string("index.docker.io/user/app") == "user/app"
    assert parse_normalized("busybox@sha256:" + "a" * 64).digest == "sha256:" + "a" * 64
    with pytest.raises(ReferenceError):
        parse_normalized("busybox@sha256:abc")
    with pytest.raises(ReferenceError, match="must be lowercase"):
        parse_normalized("Busybox")
    assert split_repo_tag("localhost:5000/x") == ("localhost:5000/x", "")
    assert split_repo_tag("x:1") == ("x", "1")


def test_progress_non_terminal_skips_progress_lines() -> None:
    out = io.StringIO()
    display_stream(
        [
            {"status": "Pulling from library/alpine", "id": "latest"},
            {"status": "Downloading", "progressDetail": {"current": 1, "total": 10}, "id": "abc"},
            {"status": "Pull complete", "progressDetail": {}, "id": "abc"},
            {"status": "Digest: sha256:beef"},
        ],
        out,
        is_terminal=False,
    )
    assert out.getvalue() == "latest: Pulling from library/alpine\nabc: Pull complete\nDigest: sha256:beef\n"


def test_progress_error_raises() -> None:
    with pytest.raises(StreamError, match="pull access denied"):
        display_stream([{"errorDetail": {"message": "pull access denied"}, "error": "x"}], io.StringIO(), False)


def test_progress_string() -> None:
    assert progress_string({"current": 100000, "total": 3642721}) == "   100kB/3.643MB"
    assert progress_string({}) == ""
