#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/<target>/ from ../testdata/session_vectors.json.

Deterministic; rerun after changing an input layout in core/src/fuzzing.rs. Layouts:
handshake targets [split, stream...]; secret_handshake_valid_prefix [control, split,
payload...]; frame_opener [control, split, param_lo, param_hi, payload...].
The one seed that needs crypto (a frame sealed with fuzzing::FRAME_KEY) is written only
when the `cryptography` package is installed.
"""
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parent / "testdata"
v = json.loads((DATA / "session_vectors.json").read_text())
low_order = json.loads((DATA / "x25519_low_order_points.json").read_text())
A, B, S = v["nodes"]["A"], v["nodes"]["B"], v["mconn_stream_from_A"]
h = bytes.fromhex


def pattern(n):
    return bytes((i * 31 + 7) & 0xFF for i in range(n))


def key_message(key):
    return b"\x22\x0a\x20" + key


# A decodable AuthSig whose key is secp256k1 (protobuf built by hand).
secp_key = b"\x02" + bytes(range(32))
pub_key = b"\x12" + bytes([len(secp_key)]) + secp_key
auth = b"\x0a" + bytes([len(pub_key)]) + pub_key + b"\x12\x40" + bytes(64)
secp_auth_sig = bytes([len(auth)]) + auth

handshake = {
    "a_key_message": b"\x00" + h(A["wire_eph_msg"]),
    "b_full_session": b"\x00" + h(B["wire_eph_msg"]) + h(B["auth_sig_sealed_frame_nonce0"])
    + h(B["node_info_sealed_frame_nonce1"]),
    "a_auth_frame_bytewise": b"\x01" + h(A["wire_eph_msg"]) + h(A["auth_sig_sealed_frame_nonce0"]),
    "low_order_point": b"\x07" + key_message(h(low_order["points"][1]["point"])),
    "low_order_bit255": b"\x00" + key_message(h(low_order["points"][2]["same_point_with_bit255_set"])),
    "wrong_length": b"\x00\x23\x0a\x20" + bytes(33),
    "oversized_length": b"\x00\xa2\x01\x0a\x20" + bytes(32),
    "malformed_tag": b"\x00\x22\x0b\x20" + bytes(32),
    "truncated_frame": b"\x05" + h(A["wire_eph_msg"]) + h(A["auth_sig_sealed_frame_nonce0"])[:500],
    "mconn_frames": b"\x03" + h(B["wire_eph_msg"]) + h(S["sealed_frames_concat"])[:2088],
}

valid_prefix = {
    "m0_a_auth_sig_bad_signature": b"\x00\x00" + h(A["auth_sig_plaintext_delimited"]),
    "m0_b_auth_sig_then_node_info": b"\x01\x05" + h(B["auth_sig_plaintext_delimited"])
    + h(B["node_info_plaintext_delimited"]),
    "m0_secp256k1_key": b"\x02\x00" + secp_auth_sig,
    "m0_bad_prefix": b"\x00\x00" + b"\x80" * 11,
    "m0_too_large": b"\x00\x01" + b"\x81\x08" + bytes(20),
    "m0_garbage_protobuf": b"\x00\x00\x05\xff\xff\xff\xff\xff",
    "m1_node_info": b"\x04\x00" + h(A["node_info_plaintext_delimited"]),
    "m1_mconn_stream": b"\x06\x02" + h(S["plaintext_stream"]),
    "m1_long": b"\x05\x07" + pattern(2100),
    "m2_sealed_auth_frame": b"\x08\x00" + h(A["auth_sig_sealed_frame_nonce0"]),
    "m3_node_info_frame": b"\x0c\x00" + h(B["node_info_sealed_frame_nonce1"]),
    "m3_truncated": b"\x0d\x01" + pattern(10),
}

frame_opener = {
    "raw_auth_frame": b"\x00\x00\x00\x00" + h(A["auth_sig_sealed_frame_nonce0"]),
    "raw_mconn_frames": b"\x00\x01\x00\x00" + h(S["sealed_frames_concat"])[:3132],
    "seal_auth_sig": b"\x01\x00\x00\x00" + h(A["auth_sig_plaintext_delimited"]),
    "seal_flip": b"\x03\x05\x10\x02" + h(A["node_info_plaintext_delimited"]),
    "seal_truncate": b"\x05\x02\x00\x03" + h(S["plaintext_stream"]),
    "seal_replay": b"\x07\x00\x00\x00" + pattern(1500),
    "seal_swap": b"\x09\x06\x00\x00" + pattern(2100),
    "seal_drop_first": b"\x0b\x00\x00\x00" + pattern(2100),
    "seal_nonce_exhaustion": b"\x11\x00\x00\x00" + pattern(3000),
    "empty": b"",
}

try:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    def frame(data, nonce):
        body = len(data).to_bytes(4, "little") + data + bytes(1024 - len(data))
        return ChaCha20Poly1305(b"\x5a" * 32).encrypt(bytes(4) + nonce.to_bytes(8, "little"), body, b"")

    frame_opener["raw_valid_frames"] = b"\x00\x00\x00\x00" + frame(b"hello", 0) + frame(pattern(1024), 1)
except ImportError:
    pass

targets = {
    "secret_handshake_low": handshake,
    "secret_handshake_high": handshake,
    "secret_handshake_valid_prefix": valid_prefix,
    "frame_opener": frame_opener,
}
for target, seeds in targets.items():
    directory = HERE / "corpus" / target
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (directory / f"seed-{name}").write_bytes(data)
    print(f"{target}: {len(seeds)} seeds")
