//! Binds the sans-IO tmp2p core to smol: the async API of ADR 062. Not built yet: see issue [smol].

pub mod session;
