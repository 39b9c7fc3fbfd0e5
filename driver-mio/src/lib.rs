//! Binds the sans-IO tmp2p core to a mio `Poll`. Not built yet: see issue [mio].
