import pytest

from lfr_platform import sealing


def test_sealed_payload_opens_with_its_key_and_deployment():
    key = sealing.new_data_key()
    sealed = sealing.seal(key, b"jpeg bytes", "dep-a")
    assert sealed != b"jpeg bytes" and b"jpeg bytes" not in sealed
    assert sealing.unseal(key, sealed, "dep-a") == b"jpeg bytes"


def test_another_key_cannot_open_it():
    sealed = sealing.seal(sealing.new_data_key(), b"face", "dep-a")
    with pytest.raises(sealing.SealError):
        sealing.unseal(sealing.new_data_key(), sealed, "dep-a")


def test_it_cannot_be_replayed_into_another_deployment():
    key = sealing.new_data_key()
    sealed = sealing.seal(key, b"face", "dep-a")
    with pytest.raises(sealing.SealError):
        sealing.unseal(key, sealed, "dep-b")


@pytest.mark.parametrize("payload", [b"", b"\x01short", b"\x02" + b"0" * 40])
def test_garbage_is_refused(payload):
    with pytest.raises(sealing.SealError):
        sealing.unseal(sealing.new_data_key(), payload, "dep-a")


def test_tampering_is_detected():
    key = sealing.new_data_key()
    sealed = bytearray(sealing.seal(key, b"vector", "dep-a"))
    sealed[-1] ^= 1
    with pytest.raises(sealing.SealError):
        sealing.unseal(key, bytes(sealed), "dep-a")


def test_a_data_key_stored_wrapped_opens_only_with_the_key_encryption_key_and_its_deployment():
    kek, data_key = sealing.new_data_key(), sealing.new_data_key()
    wrapped = sealing.KeyWrap(kek).wrap(data_key, "dep-1")
    assert data_key not in wrapped  # what Redis holds, and a copy of Redis alone
    assert sealing.KeyWrap(kek).unwrap(wrapped, "dep-1") == data_key
    with pytest.raises(sealing.SealError):
        sealing.KeyWrap(sealing.new_data_key()).unwrap(wrapped, "dep-1")  # another installation's key
    with pytest.raises(sealing.SealError):
        sealing.KeyWrap(kek).unwrap(wrapped, "dep-2")  # moved to another deployment


def test_a_key_encryption_key_file_must_hold_32_bytes(tmp_path):
    (tmp_path / "kek").write_bytes(b"short")
    with pytest.raises(ValueError, match="holds 5 bytes"):
        sealing.KeyWrap.from_file(tmp_path / "kek")
    with pytest.raises(ValueError, match="cannot read"):
        sealing.KeyWrap.from_file(tmp_path / "missing")


def test_a_signed_message_verifies_and_any_change_or_other_key_does_not():
    from lfr.v1 import matches_pb2

    key = sealing.new_data_key()
    message = matches_pb2.MatchFound(match_id="m-1", subject_id="S1", score=0.9)
    sealing.sign_message(key, message, "match")
    assert sealing.verify_message(key, message, "match")
    assert not sealing.verify_message(sealing.new_data_key(), message, "match")
    message.subject_id = "S2"
    assert not sealing.verify_message(key, message, "match")
