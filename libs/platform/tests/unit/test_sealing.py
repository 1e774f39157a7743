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
