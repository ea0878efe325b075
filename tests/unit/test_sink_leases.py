"""The lease book: the earliest live claim holds; releases and expiry hand it on."""

from __future__ import annotations

from shared.sinks.leases import LeaseBook, LeaseRecord


def claim(cid: str, expires: float = 100.0, release: bool = False) -> LeaseRecord:
    return LeaseRecord(name="n", claim_id=cid, expires_at=expires, release=release)


def test_earliest_claim_holds_until_released() -> None:
    book = LeaseBook()
    book.apply(claim("a"))
    book.apply(claim("b"))
    assert book.holder("n", 0) == "a"
    book.apply(claim("a", release=True))
    assert book.holder("n", 0) == "b"
    book.apply(claim("b", release=True))
    assert book.holder("n", 0) is None and book.claims == {}


def test_an_expired_claim_stops_holding() -> None:
    book = LeaseBook()
    book.apply(claim("crashed", expires=10))
    book.apply(claim("next", expires=100))
    assert book.holder("n", 5) == "crashed"
    assert book.holder("n", 11) == "next"
    assert book.holder("other", 0) is None
