"""The embedded DNS codec (berth.network.dns): parsing, berth's own answers, replies,
and a fuzz run over random and mutated messages."""

from __future__ import annotations

import random
import struct
import time

import pytest

from berth.network import dns
from berth.network.dns import DnsFormatError

NAMES = {
    ("web", dns.TYPE_A): ["10.0.0.2", "10.0.0.3"],
    ("web", dns.TYPE_AAAA): ["fd00::2"],
    ("db", dns.TYPE_A): ["10.0.0.4"],
    ("db", dns.TYPE_AAAA): [],
    ("2.0.0.10.in-addr.arpa", dns.TYPE_PTR): ["web.mynet"],
}


def lookup(name: str, qtype: int) -> list[str] | None:
    found = NAMES.get((name, qtype))
    return None if found is None else list(found)


def answers(reply: bytes) -> list[str | None]:
    return [record.value for record in dns.parse_message(reply).answers]


def test_parse_query_reads_the_question_and_edns_size() -> None:
    query = dns.parse_query(dns.build_query("Web.MyNet.", dns.TYPE_A, 0x1234, udp_size=1232))
    assert query.header.id == 0x1234
    assert query.header.recursion_desired
    assert query.question.labels == (b"Web", b"MyNet")
    assert query.question.name == "web.mynet"
    assert query.udp_size == 1232
    assert query.max_reply_size(tcp=False) == 1232
    assert query.max_reply_size(tcp=True) == 65535
    assert dns.parse_query(dns.build_query("web", 1, 1)).max_reply_size(tcp=False) == 512


def test_answer_echoes_id_question_case_and_copies_flags_as_docker() -> None:
    raw = dns.build_query("WeB", dns.TYPE_A, 77)
    reply = dns.answer_locally(dns.parse_query(raw), lookup)
    assert reply is not None
    message = dns.parse_message(reply)
    h = message.header
    assert (h.id, h.qr, h.rcode) == (77, True, dns.RCODE_NOERROR)
    assert h.recursion_desired and h.recursion_available
    assert not h.authoritative  # createRespMsg uses SetReply, which leaves AA clear
    assert message.questions[0].labels == (b"WeB",)
    assert sorted(str(a) for a in answers(reply)) == ["10.0.0.2", "10.0.0.3"]
    assert {(r.name, r.rtype, r.ttl) for r in message.answers} == {("web", dns.TYPE_A, 600)}


def test_rd_clear_stays_clear() -> None:
    raw = dns.build_query("web", dns.TYPE_A, 1, recursion_desired=False)
    reply = dns.answer_locally(dns.parse_query(raw), lookup)
    assert reply is not None
    assert not dns.parse_header(reply).recursion_desired


def test_aaaa_and_own_name_without_v6_is_nodata() -> None:
    reply = dns.answer_locally(dns.parse_query(dns.build_query("web", dns.TYPE_AAAA, 1)), lookup)
    assert reply is not None and answers(reply) == ["fd00::2"]
    reply = dns.answer_locally(dns.parse_query(dns.build_query("db", dns.TYPE_AAAA, 1)), lookup)
    assert reply is not None
    assert dns.parse_header(reply).rcode == dns.RCODE_NOERROR and answers(reply) == []


def test_addresses_of_the_wrong_family_or_garbage_are_left_out() -> None:
    query = dns.parse_query(dns.build_query("x", dns.TYPE_A, 1))
    assert answers(dns.answer_addresses(query, ["10.1.1.1", "fd00::1", "nonsense"])) == ["10.1.1.1"]


def test_ptr() -> None:
    raw = dns.build_query("2.0.0.10.in-addr.arpa", dns.TYPE_PTR, 9)
    reply = dns.answer_locally(dns.parse_query(raw), lookup)
    assert reply is not None and answers(reply) == ["web.mynet"]
    unknown = dns.build_query("9.0.0.10.in-addr.arpa", dns.TYPE_PTR, 9)
    assert dns.answer_locally(dns.parse_query(unknown), lookup) is None


def test_mx_for_own_name_is_empty_noerror_and_other_types_forward() -> None:
    reply = dns.answer_locally(dns.parse_query(dns.build_query("web", dns.TYPE_MX, 1)), lookup)
    assert reply is not None and answers(reply) == []
    assert dns.answer_locally(dns.parse_query(dns.build_query("elsewhere", dns.TYPE_MX, 1)), lookup) is None
    assert dns.answer_locally(dns.parse_query(dns.build_query("web", 16, 1)), lookup) is None
    assert dns.answer_locally(dns.parse_query(dns.build_query("example.com", 1, 1)), lookup) is None


def test_too_many_answers_for_udp_are_truncated_with_tc() -> None:
    query = dns.parse_query(dns.build_query("many", dns.TYPE_A, 1))
    addresses = [f"10.0.{i // 256}.{i % 256}" for i in range(100)]
    udp = dns.answer_addresses(query, addresses)
    assert len(udp) <= 512 and dns.parse_header(udp).truncated
    assert 0 < len(answers(udp)) < 100
    tcp = dns.answer_addresses(query, addresses, tcp=True)
    assert not dns.parse_header(tcp).truncated and len(answers(tcp)) == 100


def test_error_replies() -> None:
    query = dns.parse_query(dns.build_query("nope", dns.TYPE_A, 5))
    for build, rcode in ((dns.nxdomain, 3), (dns.servfail, 2), (dns.refused, 5)):
        reply = build(query)
        header = dns.parse_header(reply)
        assert (header.id, header.rcode, header.qr) == (5, rcode, True)
        assert dns.parse_message(reply).questions[0].name == "nope"


def _header(id: int = 1, flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack(">HHHHHH", id, flags, qd, an, ns, ar)


QUESTION_WEB = b"\x03web\x00\x00\x01\x00\x01"


@pytest.mark.parametrize(
    ("data", "rcode"),
    [
        (_header(qd=0), dns.RCODE_FORMERR),
        (_header(qd=2) + QUESTION_WEB * 2, dns.RCODE_FORMERR),
        (_header(ar=3) + QUESTION_WEB, dns.RCODE_FORMERR),
        (_header() + b"\x03we", dns.RCODE_FORMERR),
        (_header() + b"\x03web\x00\x00", dns.RCODE_FORMERR),
        (_header() + b"\x40web\x00\x00\x01\x00\x01", dns.RCODE_FORMERR),
        (_header(flags=0x2800) + QUESTION_WEB, dns.RCODE_NOTIMP),  # opcode 5, UPDATE
    ],
)
def test_malformed_queries_get_formerr_or_notimp(data: bytes, rcode: int) -> None:
    with pytest.raises(DnsFormatError) as caught:
        dns.parse_query(data)
    reply = caught.value.reply
    assert reply is not None
    header = dns.parse_header(reply)
    assert (header.id, header.qr, header.rcode) == (1, True, rcode)


def test_runts_and_responses_get_no_reply() -> None:
    for data in (b"", b"\x00" * 11, _header(flags=0x8000) + QUESTION_WEB):
        with pytest.raises(DnsFormatError) as caught:
            dns.parse_query(data)
        assert caught.value.reply is None


def test_compression_pointer_loops_and_forward_pointers_are_refused() -> None:
    self_loop = _header() + b"\xc0\x0c\x00\x01\x00\x01"
    forward = _header() + b"\xc0\x0e\x00\x01\x00\x01"
    label_then_back = _header() + b"\x01a\xc0\x0c\x00\x01\x00\x01"
    for data in (self_loop, forward, label_then_back):
        with pytest.raises(DnsFormatError):
            dns.parse_query(data)


def test_compressed_names_in_records_are_followed() -> None:
    reply = dns.answer_ptr(dns.parse_query(dns.build_query("1.0.0.10.in-addr.arpa", 12, 1)), ["a.b"])
    assert answers(reply) == ["a.b"]
    assert dns.parse_message(reply).answers[0].name == "1.0.0.10.in-addr.arpa"


def test_name_limits() -> None:
    with pytest.raises(DnsFormatError):
        dns.parse_query(_header() + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01")
    long_name = b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x00"  # 257 bytes
    with pytest.raises(DnsFormatError):
        dns.parse_query(_header() + long_name + b"\x00\x01\x00\x01")
    with pytest.raises(ValueError):
        dns.build_query("a" * 64, 1, 1)
    with pytest.raises(ValueError):
        dns.text_to_labels("a..b")


def test_odd_bytes_in_names_are_escaped_not_matched() -> None:
    raw = _header() + b"\x05w.e\\b\x00\x00\x01\x00\x01"
    assert dns.parse_query(raw).question.name == "w\\.e\\\\b"
    raw = _header() + b"\x03w\x00b\x00\x00\x01\x00\x01"
    assert dns.parse_query(raw).question.name == "w\\000b"


def test_more_than_one_opt_is_refused() -> None:
    opt = b"\x00" + struct.pack(">HHIH", dns.TYPE_OPT, 4096, 0, 0)
    with pytest.raises(DnsFormatError):
        dns.parse_query(_header(ar=2) + QUESTION_WEB + opt + opt)


def test_upstream_reply_checks() -> None:
    question = dns.parse_query(dns.build_query("example.com", 1, 1)).question
    upstream_query = dns.parse_query(dns.build_query("EXAMPLE.com", 1, 42))
    reply = dns.answer_addresses(upstream_query, ["192.0.2.1"])
    assert dns.check_upstream_reply(reply, 42, question).rcode == 0
    with pytest.raises(DnsFormatError):
        dns.check_upstream_reply(reply, 43, question)
    other = dns.parse_query(dns.build_query("example.org", 1, 1)).question
    with pytest.raises(DnsFormatError):
        dns.check_upstream_reply(reply, 42, other)
    with pytest.raises(DnsFormatError):
        dns.check_upstream_reply(dns.build_query("example.com", 1, 42), 42, question)
    assert dns.parse_header(dns.with_id(reply, 7)).id == 7


# --- fuzzing --------------------------------------------------------------------------


def _seeds() -> list[bytes]:
    seeds = [
        dns.build_query("web", dns.TYPE_A, 1),
        dns.build_query("web.mynet", dns.TYPE_AAAA, 2, udp_size=4096),
        dns.build_query("2.0.0.10.in-addr.arpa", dns.TYPE_PTR, 3),
        dns.build_query("db", dns.TYPE_MX, 4),
        _header() + b"\x01a\x00\x00\x01\x00\x01" + b"\x01b\xc0\x0c\x00\x01\x00\x01",
    ]
    query = dns.parse_query(seeds[0])
    seeds.append(dns.answer_addresses(query, ["10.0.0.1", "10.0.0.2"]))
    seeds.append(dns.answer_ptr(dns.parse_query(seeds[2]), ["web.mynet"]))
    return seeds


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        choice = rng.randrange(7)
        if choice == 0 and buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif choice == 1 and buf:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif choice == 2:
            buf.insert(rng.randint(0, len(buf)), rng.choice((0x00, 0x3F, 0x40, 0xC0, 0xFF, rng.randrange(256))))
        elif choice == 3 and buf:
            at = rng.randrange(len(buf))
            del buf[at : at + rng.choice((1, 2, 4, len(buf)))]
        elif choice == 4 and len(buf) >= 2:  # a compression pointer anywhere
            at = rng.randrange(len(buf) - 1)
            buf[at : at + 2] = bytes((0xC0 | rng.randrange(0x40), rng.randrange(256)))
        elif choice == 5 and len(buf) >= 12:  # section counts
            at = rng.choice((4, 6, 8, 10))
            buf[at : at + 2] = struct.pack(">H", rng.choice((0, 1, 2, 3, 0xFFFF, rng.randrange(65536))))
        elif choice == 6 and len(buf) >= 3:  # a reply turned back into a query
            buf[2] &= 0x7F
    return bytes(buf)


def _exercise(data: bytes) -> None:
    try:
        query = dns.parse_query(data)
    except DnsFormatError as err:
        reply = err.reply
        if reply is not None:
            assert dns.parse_header(reply).qr
        return
    for tcp in (False, True):
        reply = dns.answer_locally(query, lookup, tcp=tcp)
        if reply is None:
            reply = dns.servfail(query)
        assert len(reply) <= query.max_reply_size(tcp)
        parsed = dns.parse_message(reply)  # what berth sends must parse
        assert parsed.header.id == query.header.id
        assert parsed.questions[0].same_as(query.question)


def _exercise_upstream(data: bytes, question: dns.Question) -> None:
    try:
        dns.parse_message(data)
    except DnsFormatError:
        pass
    try:
        dns.check_upstream_reply(data, 1, question)
    except DnsFormatError:
        pass


def test_fuzz_random_and_mutated_messages_only_raise_the_format_error() -> None:
    rng = random.Random(0xD45)
    seeds = _seeds()
    question = dns.parse_query(seeds[0]).question
    deadline = time.monotonic() + 20
    for i in range(30000):
        if i % 3 == 0:
            data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 80)))
            if len(data) >= 12 and rng.random() < 0.7:  # plausible counts reach deeper
                data = _header(rng.randrange(65536), rng.randrange(65536), rng.randint(0, 2),
                               rng.randint(0, 2), rng.randint(0, 2), rng.randint(0, 3)) + data[12:]
        else:
            data = _mutate(rng, rng.choice(seeds))
        started = time.monotonic()
        _exercise(data)
        _exercise_upstream(data, question)
        assert time.monotonic() - started < 0.5, f"slow on {data.hex()}"
        if time.monotonic() > deadline:
            break


def test_fuzz_pointer_mazes_terminate() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        body = bytearray()
        for _ in range(rng.randint(1, 40)):
            if rng.random() < 0.5:
                body += bytes((0xC0 | rng.randrange(2), rng.randrange(256)))
            else:
                n = rng.randrange(4)
                body += bytes((n,)) + bytes(rng.randrange(256) for _ in range(n))
        data = _header(an=rng.randint(0, 1), ar=rng.randint(0, 2)) + bytes(body)
        started = time.monotonic()
        _exercise(data)
        assert time.monotonic() - started < 0.5
