"""DNS messages for the embedded resolver (Docker's 127.0.0.11), as pure code on bytes.

The model: a container asks one question per message. berth either answers it from
its own names (containers, aliases and short IDs on the asker's networks) or the
resolver relays it to the host's upstream servers. This module owns everything about
the bytes of that exchange:

- parsing a message (`parse_message`) and a client's query (`parse_query`): header, the
  question, the EDNS OPT record that raises the UDP reply size. What is malformed is
  refused with `DnsFormatError`, which carries the reply to send back (FORMERR, NOTIMP,
  or nothing at all for runts and responses). Compression pointers must point strictly
  before the name segment that uses them, so no pointer loop can make parsing spin;
  names are limited to 255 bytes and labels to 63.
- deciding what berth answers itself (`answer_locally`), as libnetwork's resolver does:
  A and AAAA with TTL 600 (a name berth owns without an address of that family gets
  NOERROR and no answers), PTR, and MX (NOERROR, no answers, for a name berth owns).
- building replies: answers, NXDOMAIN, SERVFAIL, REFUSED, FORMERR, NOTIMP. Flags are
  copied as miekg/dns `SetReply` does, which Docker uses: ID, opcode, RD and CD copied,
  RA set, AA never set. Answers that do not fit the client's size are dropped and TC set.
- checking an upstream's reply before it is relayed (`check_upstream_reply`).

It must not open sockets, read clocks or draw random numbers, nor know where names come
from: the caller passes a lookup function.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

TYPE_A = 1
TYPE_NS = 2
TYPE_CNAME = 5
TYPE_PTR = 12
TYPE_MX = 15
TYPE_AAAA = 28
TYPE_OPT = 41
CLASS_IN = 1

OPCODE_QUERY = 0

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5

RESPONSE_TTL = 600  # libnetwork's respTTL
MIN_UDP_SIZE = 512  # RFC 1035: what every client can take over UDP
MAX_MESSAGE_SIZE = 65535  # the TCP length prefix is 16 bits
MAX_NAME_LENGTH = 255  # on the wire, length bytes and the root included
MAX_LABEL_LENGTH = 63
HEADER_SIZE = 12

_QR = 0x8000
_AA = 0x0400
_TC = 0x0200
_RD = 0x0100
_RA = 0x0080
_CD = 0x0010
_QUESTION_POINTER = b"\xc0\x0c"  # the question's name always starts right after the header


class DnsFormatError(ValueError):
    """A message berth will not handle as asked.

    `reply` is what to send back: a FORMERR (or NOTIMP) carrying the sender's ID, or
    None when the message was too short to have an ID or was itself a response, to
    which a server must never reply.
    """

    def __init__(self, message: str, header: Header | None = None, rcode: int = RCODE_FORMERR):
        super().__init__(message)
        self.header = header
        self.rcode = rcode

    @property
    def reply(self) -> bytes | None:
        if self.header is None or self.header.qr:
            return None
        flags = _QR | _RA | (self.header.flags & (0x7800 | _RD)) | self.rcode
        return struct.pack(">HHHHHH", self.header.id, flags, 0, 0, 0, 0)


@dataclass(frozen=True)
class Header:
    id: int
    flags: int
    qdcount: int
    ancount: int
    nscount: int
    arcount: int

    @property
    def qr(self) -> bool:
        return bool(self.flags & _QR)

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def authoritative(self) -> bool:
        return bool(self.flags & _AA)

    @property
    def truncated(self) -> bool:
        return bool(self.flags & _TC)

    @property
    def recursion_desired(self) -> bool:
        return bool(self.flags & _RD)

    @property
    def recursion_available(self) -> bool:
        return bool(self.flags & _RA)

    @property
    def rcode(self) -> int:
        return self.flags & 0xF


@dataclass(frozen=True)
class Question:
    labels: tuple[bytes, ...]  # as sent: case is kept, for the reply to echo
    qtype: int
    qclass: int = CLASS_IN

    @property
    def name(self) -> str:
        """Lower-case presentation form without the final dot ("web.mynet"), which is
        what lookups take; "." is the root."""
        return name_to_text(tuple(label.lower() for label in self.labels))

    def wire(self) -> bytes:
        return encode_labels(self.labels) + struct.pack(">HH", self.qtype, self.qclass)

    def same_as(self, other: Question) -> bool:
        """Equal as DNS compares names: ASCII case does not matter."""
        return (self.qtype, self.qclass) == (other.qtype, other.qclass) and tuple(
            label.lower() for label in self.labels
        ) == tuple(label.lower() for label in other.labels)


@dataclass(frozen=True)
class Record:
    name: str  # presentation form, lower case, as Question.name
    rtype: int
    rclass: int
    ttl: int
    data: bytes  # RDATA as sent; names in it may be compressed
    value: str | None = None  # decoded for A, AAAA (address) and PTR, CNAME, NS (name)


@dataclass(frozen=True)
class Message:
    header: Header
    questions: tuple[Question, ...]
    answers: tuple[Record, ...]
    authority: tuple[Record, ...]
    additional: tuple[Record, ...]


@dataclass(frozen=True)
class Query:
    """A client's query as berth serves it: exactly one question."""

    header: Header
    question: Question
    udp_size: int | None  # from the EDNS OPT record, None without one

    def max_reply_size(self, tcp: bool) -> int:
        if tcp:
            return MAX_MESSAGE_SIZE
        return max(MIN_UDP_SIZE, self.udp_size or 0)


# --- names --------------------------------------------------------------------------


def name_to_text(labels: Sequence[bytes]) -> str:
    """Presentation form: dots between labels; a dot or backslash inside a label is
    escaped with a backslash, other bytes outside printable ASCII as \\DDD."""
    if not labels:
        return "."
    out: list[str] = []
    for label in labels:
        chars: list[str] = []
        for byte in label:
            if byte in b".\\":
                chars.append("\\" + chr(byte))
            elif 0x21 <= byte <= 0x7E:
                chars.append(chr(byte))
            else:
                chars.append(f"\\{byte:03d}")
        out.append("".join(chars))
    return ".".join(out)


def text_to_labels(name: str) -> tuple[bytes, ...]:
    """The labels of a plain name ("web.mynet" or "web.mynet."); raises ValueError for
    what cannot be a name: empty labels, non-ASCII, or over the length limits."""
    name = name.removesuffix(".")
    if not name:
        return ()
    labels = tuple(label.encode("ascii") for label in name.split("."))
    encode_labels(labels)
    return labels


def encode_labels(labels: Sequence[bytes]) -> bytes:
    out = bytearray()
    for label in labels:
        if not 0 < len(label) <= MAX_LABEL_LENGTH:
            raise ValueError(f"DNS label of {len(label)} bytes (1 to {MAX_LABEL_LENGTH} allowed)")
        out.append(len(label))
        out += label
    out.append(0)
    if len(out) > MAX_NAME_LENGTH:
        raise ValueError(f"DNS name of {len(out)} bytes (at most {MAX_NAME_LENGTH})")
    return bytes(out)


def _read_name(data: bytes, offset: int, header: Header | None) -> tuple[tuple[bytes, ...], int]:
    """Read a possibly compressed name at `offset`; returns its labels and the offset
    just after it in the message."""
    labels: list[bytes] = []
    wire_length = 1
    pos = offset
    segment_start = offset  # a pointer must lead before this, so every jump goes back
    after: int | None = None
    while True:
        if pos >= len(data):
            raise DnsFormatError("name runs past the end of the message", header)
        length = data[pos]
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= len(data):
                raise DnsFormatError("compression pointer cut short", header)
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if target >= segment_start:
                raise DnsFormatError("compression pointer does not point backwards", header)
            if after is None:
                after = pos + 2
            pos = segment_start = target
            continue
        if kind:
            raise DnsFormatError(f"label type 0x{kind:02x} is not supported", header)
        if length == 0:
            return tuple(labels), (pos + 1 if after is None else after)
        if pos + 1 + length > len(data):
            raise DnsFormatError("label runs past the end of the message", header)
        wire_length += length + 1
        if wire_length > MAX_NAME_LENGTH:
            raise DnsFormatError(f"name longer than {MAX_NAME_LENGTH} bytes", header)
        labels.append(data[pos + 1 : pos + 1 + length])
        pos += 1 + length


# --- parsing -------------------------------------------------------------------------


def parse_header(data: bytes) -> Header:
    if len(data) < HEADER_SIZE:
        raise DnsFormatError(f"message of {len(data)} bytes is shorter than a DNS header")
    return Header(*struct.unpack_from(">HHHHHH", data))


def _read_question(data: bytes, pos: int, header: Header) -> tuple[Question, int]:
    labels, pos = _read_name(data, pos, header)
    if pos + 4 > len(data):
        raise DnsFormatError("question cut short", header)
    qtype, qclass = struct.unpack_from(">HH", data, pos)
    return Question(labels, qtype, qclass), pos + 4


def _read_record(data: bytes, pos: int, header: Header) -> tuple[Record, int]:
    labels, pos = _read_name(data, pos, header)
    if pos + 10 > len(data):
        raise DnsFormatError("resource record cut short", header)
    rtype, rclass, ttl, rdlength = struct.unpack_from(">HHIH", data, pos)
    pos += 10
    if pos + rdlength > len(data):
        raise DnsFormatError("resource record data runs past the end of the message", header)
    rdata = data[pos : pos + rdlength]
    value: str | None = None
    if rtype == TYPE_A and rdlength == 4:
        value = str(ipaddress.IPv4Address(rdata))
    elif rtype == TYPE_AAAA and rdlength == 16:
        value = str(ipaddress.IPv6Address(rdata))
    elif rtype in (TYPE_PTR, TYPE_CNAME, TYPE_NS):
        target, end = _read_name(data, pos, header)
        if end != pos + rdlength:
            raise DnsFormatError("name in resource record data has the wrong length", header)
        value = name_to_text(tuple(label.lower() for label in target))
    name = name_to_text(tuple(label.lower() for label in labels))
    return Record(name, rtype, rclass, ttl, rdata, value), pos + rdlength


def parse_message(data: bytes) -> Message:
    """Parse a whole message, every section; trailing bytes after the last record are
    ignored, as most servers do."""
    header = parse_header(data)
    pos = HEADER_SIZE
    questions: list[Question] = []
    for _ in range(header.qdcount):
        question, pos = _read_question(data, pos, header)
        questions.append(question)
    sections: list[list[Record]] = [[], [], []]
    for section, count in zip(sections, (header.ancount, header.nscount, header.arcount), strict=True):
        for _ in range(count):
            record, pos = _read_record(data, pos, header)
            section.append(record)
    return Message(header, tuple(questions), *(tuple(s) for s in sections))


def parse_query(data: bytes) -> Query:
    """A client's query, refused unless it is one a server answers.

    The rules are miekg/dns's, which Docker's resolver serves with: responses are
    ignored, opcodes other than QUERY get NOTIMP, and a query must have exactly one
    question, at most one answer and one authority record and two additional ones.
    """
    header = parse_header(data)
    if header.qr:
        raise DnsFormatError("message is a response, not a query", header)
    if header.opcode != OPCODE_QUERY:
        raise DnsFormatError(f"opcode {header.opcode} is not supported", header, RCODE_NOTIMP)
    if header.qdcount != 1:
        raise DnsFormatError(f"query has {header.qdcount} questions (1 allowed)", header)
    if header.ancount > 1 or header.nscount > 1 or header.arcount > 2:
        raise DnsFormatError("query carries too many records", header)
    message = parse_message(data)
    udp_size: int | None = None
    for record in message.additional:
        if record.rtype != TYPE_OPT:
            continue
        if udp_size is not None:
            raise DnsFormatError("query has more than one OPT record", header)
        if record.name != ".":
            raise DnsFormatError("OPT record not owned by the root", header)
        udp_size = record.rclass
    return Query(header, message.questions[0], udp_size)


# --- building ------------------------------------------------------------------------


def build_query(name: str, qtype: int, id: int, *, recursion_desired: bool = True,
                udp_size: int | None = None) -> bytes:
    """A query for one name, as a stub resolver sends it (with an OPT record when
    `udp_size` is given)."""
    flags = _RD if recursion_desired else 0
    arcount = 1 if udp_size is not None else 0
    out = struct.pack(">HHHHHH", id, flags, 1, 0, 0, arcount)
    out += Question(text_to_labels(name), qtype).wire()
    if udp_size is not None:
        out += b"\x00" + struct.pack(">HHIH", TYPE_OPT, udp_size, 0, 0)
    return out


def _reply_flags(query: Query, rcode: int, truncated: bool = False) -> int:
    flags = _QR | _RA | (query.header.flags & (0x7800 | _RD | _CD)) | rcode
    return flags | _TC if truncated else flags


def build_reply(query: Query, rcode: int = RCODE_NOERROR, answers: Sequence[bytes] = (),
                *, tcp: bool = False) -> bytes:
    """A reply echoing the question, with `answers` (encoded records whose owner is the
    question's name). Answers that would overflow what the client takes are dropped, and
    TC set so that a UDP client asks again over TCP."""
    limit = query.max_reply_size(tcp)
    question = query.question.wire()
    size = HEADER_SIZE + len(question)
    kept: list[bytes] = []
    for record in answers:
        if size + len(record) > limit:
            break
        kept.append(record)
        size += len(record)
    truncated = len(kept) < len(answers)
    header = struct.pack(">HHHHHH", query.header.id, _reply_flags(query, rcode, truncated),
                         1, len(kept), 0, 0)
    return b"".join([header, question, *kept])


def address_record(address: str, ttl: int = RESPONSE_TTL) -> bytes:
    """An A or AAAA record (by the address's family) for the question's name."""
    ip = ipaddress.ip_address(address)
    rtype = TYPE_A if ip.version == 4 else TYPE_AAAA
    return _QUESTION_POINTER + struct.pack(">HHIH", rtype, CLASS_IN, ttl, len(ip.packed)) + ip.packed


def ptr_record(target: str, ttl: int = RESPONSE_TTL) -> bytes:
    """A PTR record for the question's name pointing at `target` ("web.mynet")."""
    rdata = encode_labels(text_to_labels(target))
    return _QUESTION_POINTER + struct.pack(">HHIH", TYPE_PTR, CLASS_IN, ttl, len(rdata)) + rdata


def answer_addresses(query: Query, addresses: Sequence[str], *, tcp: bool = False) -> bytes:
    """NOERROR with the addresses of the asked family; others, and what is not an
    address, are left out (an empty answer is NOERROR without data, as Docker sends for
    a name it owns that has no address of that family)."""
    version = 6 if query.question.qtype == TYPE_AAAA else 4
    records: list[bytes] = []
    for address in addresses:
        try:
            if ipaddress.ip_address(address).version == version:
                records.append(address_record(address))
        except ValueError:
            continue
    return build_reply(query, RCODE_NOERROR, records, tcp=tcp)


def answer_ptr(query: Query, names: Sequence[str], *, tcp: bool = False) -> bytes:
    records: list[bytes] = []
    for name in names:
        try:
            records.append(ptr_record(name))
        except ValueError:
            continue
    return build_reply(query, RCODE_NOERROR, records, tcp=tcp)


def nxdomain(query: Query) -> bytes:
    return build_reply(query, RCODE_NXDOMAIN)


def servfail(query: Query) -> bytes:
    return build_reply(query, RCODE_SERVFAIL)


def refused(query: Query) -> bytes:
    return build_reply(query, RCODE_REFUSED)


def truncated_reply(query: Query) -> bytes:
    """An empty reply with TC set: the answer exists but is too big for UDP."""
    header = struct.pack(">HHHHHH", query.header.id, _reply_flags(query, RCODE_NOERROR, True), 1, 0, 0, 0)
    return header + query.question.wire()


NameLookup = Callable[[str, int], list[str] | None]


def answer_locally(query: Query, lookup: NameLookup, *, tcp: bool = False) -> bytes | None:
    """berth's own answer to `query`, or None when the name is not berth's and the
    query must be forwarded upstream.

    `lookup(name, qtype)` gets the lower-case name without its final dot and TYPE_A,
    TYPE_AAAA or TYPE_PTR; it returns the addresses (names, for PTR) or None when the
    name is not berth's. An empty list for A/AAAA means "berth's name, no address of
    that family": NOERROR without answers, so the query does not leak upstream. An
    empty PTR list is forwarded, as Docker does.
    """
    question = query.question
    if question.qclass != CLASS_IN:
        return None
    if question.qtype in (TYPE_A, TYPE_AAAA):
        addresses = lookup(question.name, question.qtype)
        if addresses is None:
            return None
        return answer_addresses(query, addresses, tcp=tcp)
    if question.qtype == TYPE_PTR:
        names = lookup(question.name, TYPE_PTR)
        if not names:
            return None
        return answer_ptr(query, names, tcp=tcp)
    if question.qtype == TYPE_MX:
        # libnetwork: a name it owns has no MX; NOERROR lets mailers fall back to A/AAAA
        if lookup(question.name, TYPE_A) is None and lookup(question.name, TYPE_AAAA) is None:
            return None
        return build_reply(query, RCODE_NOERROR, tcp=tcp)
    return None


# --- relaying ------------------------------------------------------------------------


def with_id(message: bytes, id: int) -> bytes:
    """The same message under another ID (queries go upstream under a fresh one)."""
    if len(message) < 2:
        raise DnsFormatError("message too short to carry an ID")
    return struct.pack(">H", id) + message[2:]


def check_upstream_reply(data: bytes, id: int, question: Question) -> Header:
    """The header of an upstream's reply, if it is one to our query: a response, with
    our ID and our question (case aside). A reply without a question is accepted only
    if it reports an error or truncation, as some servers send those bare."""
    header = parse_header(data)
    if not header.qr:
        raise DnsFormatError("upstream sent a query, not a response", header)
    if header.id != id:
        raise DnsFormatError("upstream reply has another ID", header)
    if header.qdcount == 0:
        if header.rcode == RCODE_NOERROR and not header.truncated:
            raise DnsFormatError("upstream reply has no question", header)
        return header
    if header.qdcount != 1:
        raise DnsFormatError(f"upstream reply has {header.qdcount} questions", header)
    answered, _ = _read_question(data, HEADER_SIZE, header)
    if not answered.same_as(question):
        raise DnsFormatError("upstream reply is for another question", header)
    return header
