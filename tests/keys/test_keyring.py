"""The keyring wraps small secrets under the current master key, bound to purpose and object."""

from __future__ import annotations

import pytest

from apps.keys import keyring as keyring_module
from apps.keys.keyring import KeyringError, keyring
from apps.keys.master import decode_key, generate_key, key_id

SECRET = b"\x00" * 31 + b"\x01"


def test_a_wrapped_secret_unwraps_under_the_same_binding(master_key):
    wrapped = keyring().wrap(SECRET, purpose="data-key:test", object_id="42")

    assert wrapped.master_key_id == key_id(decode_key(master_key))
    assert SECRET not in wrapped.blob
    assert (
        keyring().unwrap(
            wrapped.blob,
            master_key_id=wrapped.master_key_id,
            purpose="data-key:test",
            object_id="42",
        )
        == SECRET
    )


def test_each_wrap_uses_a_fresh_nonce(master_key):
    first = keyring().wrap(SECRET, purpose="p", object_id="1")
    second = keyring().wrap(SECRET, purpose="p", object_id="1")
    assert first.blob != second.blob


@pytest.mark.parametrize(("purpose", "object_id"), [("other", "42"), ("data-key:test", "43")])
def test_a_wrapped_secret_moved_to_another_purpose_or_object_does_not_unwrap(
    master_key, purpose, object_id
):
    wrapped = keyring().wrap(SECRET, purpose="data-key:test", object_id="42")

    with pytest.raises(KeyringError) as error:
        keyring().unwrap(
            wrapped.blob, master_key_id=wrapped.master_key_id, purpose=purpose, object_id=object_id
        )
    assert str(error.value) == keyring_module.UNWRAP_FAILED.format(key_id=wrapped.master_key_id)


def test_a_secret_wrapped_by_an_unconfigured_master_key_names_the_missing_key(settings, master_key):
    wrapped = keyring().wrap(SECRET, purpose="p", object_id="1")
    settings.INTERCHANGE_MASTER_KEY = generate_key()

    with pytest.raises(KeyringError) as error:
        keyring().unwrap(
            wrapped.blob, master_key_id=wrapped.master_key_id, purpose="p", object_id="1"
        )
    assert str(error.value) == keyring_module.UNKNOWN_MASTER_KEY.format(
        key_id=wrapped.master_key_id
    )


def test_the_previous_master_key_still_unwraps_and_new_wraps_use_the_current_one(
    settings, master_key
):
    old = keyring().wrap(SECRET, purpose="p", object_id="1")
    settings.INTERCHANGE_MASTER_KEY, settings.INTERCHANGE_MASTER_KEY_PREVIOUS = (
        generate_key(),
        master_key,
    )
    ring = keyring()

    assert (
        ring.unwrap(old.blob, master_key_id=old.master_key_id, purpose="p", object_id="1") == SECRET
    )
    rewrapped = ring.rewrap(old, purpose="p", object_id="1")
    assert rewrapped.master_key_id == ring.current.key_id != old.master_key_id


def test_the_master_key_never_appears_in_a_repr(master_key):
    assert master_key not in repr(keyring())
    assert repr(decode_key(master_key)) not in repr(keyring())
