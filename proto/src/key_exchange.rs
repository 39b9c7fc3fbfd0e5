//! The message that carries an ephemeral X25519 key in the SecretConnection key exchange.

/// `google.protobuf.BytesValue`: the wrapper Go nodes use for the ephemeral key
/// (`0a 20` + 32 key bytes, inside a uvarint length prefix).
///
/// Hand-derived rather than generated: prost-build maps the well-known wrapper types to
/// plain Rust values and would not give us a message type to encode on its own.
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct BytesValue {
    /// The wrapped bytes: the 32-byte X25519 public key in the handshake.
    #[prost(bytes = "bytes", tag = "1")]
    pub value: ::bytes::Bytes,
}
