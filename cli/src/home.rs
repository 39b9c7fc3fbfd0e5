//! The node's home directory, in one of two layouts:
//! - a CometBFT home, recognised by `config/config.toml` (what `cometbftd init` or
//!   `tmp2p init` writes): the key at `node_key_file` (default `config/node_key.json`), the
//!   network from `genesis_file`'s `chain_id` (default `config/genesis.json`), the address
//!   book at `[p2p] addr_book_file` (default `config/addrbook.json`, then
//!   `data/addrbook.json`) imported at first start, and our peer store at
//!   `data/tmp2p-peerstore.redb`, beside CometBFT's own data;
//! - tmp2p's flat one otherwise: `node_key.json` and `peerstore.redb` in the directory.
//!
//! A missing key is generated (mode 0600), as CometBFT does on first start.

use std::path::{Path, PathBuf};

use rand_core::OsRng;
use tmp2p_core::NodeKey;

use crate::cometbft_config::FileSettings;
use crate::CliError;

/// Where CometBFT keeps the configuration, relative to the home.
pub(crate) const CONFIG_TOML: &str = "config/config.toml";
/// CometBFT's default key file, relative to the home.
pub(crate) const DEFAULT_NODE_KEY: &str = "config/node_key.json";
/// CometBFT's default genesis file, relative to the home.
pub(crate) const DEFAULT_GENESIS: &str = "config/genesis.json";
/// CometBFT's default address book (v0.34 and v0.38), relative to the home.
const DEFAULT_ADDRBOOK: &str = "config/addrbook.json";
/// Where some deployments keep the address book instead.
const DATA_ADDRBOOK: &str = "data/addrbook.json";
/// Our peer store in a CometBFT home.
const COMETBFT_STORE: &str = "data/tmp2p-peerstore.redb";

/// A home directory, its layout decided and its config.toml (if any) read.
pub(crate) struct Home {
    root: PathBuf,
    cometbft: bool,
    settings: FileSettings,
}

impl Home {
    /// Opens `root`, creating it (flat layout) when it does not exist.
    ///
    /// # Errors
    /// The directory cannot be created, or config.toml is unreadable or malformed
    /// (bad input: exit code 2).
    pub(crate) fn open(root: &Path) -> Result<Self, CliError> {
        let config = root.join(CONFIG_TOML);
        if config.exists() {
            let settings =
                FileSettings::load(&config).map_err(|e| CliError::BadInput(e.to_string()))?;
            return Ok(Home {
                root: root.to_owned(),
                cometbft: true,
                settings,
            });
        }
        std::fs::create_dir_all(root).map_err(|e| {
            CliError::BadInput(format!("cannot create home {}: {e}", root.display()))
        })?;
        Ok(Home {
            root: root.to_owned(),
            cometbft: false,
            settings: FileSettings::default(),
        })
    }

    /// Whether this is a CometBFT home (config/config.toml).
    pub(crate) fn is_cometbft(&self) -> bool {
        self.cometbft
    }

    /// What config.toml sets (nothing for the flat layout).
    pub(crate) fn settings(&self) -> &FileSettings {
        &self.settings
    }

    /// The node key, generated on first run.
    ///
    /// # Errors
    /// The key file is unreadable or malformed, or a new one cannot be written.
    pub(crate) fn key(&self) -> Result<NodeKey, CliError> {
        let path = if self.cometbft {
            self.resolve(self.settings.node_key_file.as_deref(), DEFAULT_NODE_KEY)
        } else {
            self.root.join("node_key.json")
        };
        if path.exists() {
            return crate::load_key(&path);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::Runtime(format!("cannot create {}: {e}", dir.display())))?;
        }
        let key = NodeKey::generate(&mut OsRng);
        crate::write_key_file(&path, &key, false)?;
        tracing::info!(path = %path.display(), node_id = %key.node_id(), "generated a node key");
        Ok(key)
    }

    /// The chain id in genesis.json; `None` for the flat layout or a missing file.
    ///
    /// # Errors
    /// The genesis file exists but is unreadable or has no string `chain_id`.
    pub(crate) fn genesis_network(&self) -> Result<Option<String>, CliError> {
        if !self.cometbft {
            return Ok(None);
        }
        let path = self.resolve(self.settings.genesis_file.as_deref(), DEFAULT_GENESIS);
        if !path.exists() {
            return Ok(None);
        }
        read_chain_id(&path).map(Some)
    }

    /// Where the peer store lives.
    pub(crate) fn store_path(&self) -> PathBuf {
        if self.cometbft {
            self.root.join(COMETBFT_STORE)
        } else {
            self.root.join("peerstore.redb")
        }
    }

    /// The CometBFT address book to import at first start, if there is one.
    pub(crate) fn addrbook(&self) -> Option<PathBuf> {
        if !self.cometbft {
            return None;
        }
        let configured = self.resolve(self.settings.addr_book_file.as_deref(), DEFAULT_ADDRBOOK);
        [configured, self.root.join(DATA_ADDRBOOK)]
            .into_iter()
            .find(|path| path.exists())
    }

    /// A configured path, relative to the home unless absolute (CometBFT's `rootify`).
    fn resolve(&self, configured: Option<&Path>, default: &str) -> PathBuf {
        let path = configured.unwrap_or_else(|| Path::new(default));
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.root.join(path)
        }
    }
}

/// The `chain_id` of a genesis file. Real genesis files can be hundreds of megabytes, so
/// the file is streamed and every other field skipped.
fn read_chain_id(path: &Path) -> Result<String, CliError> {
    #[derive(serde::Deserialize)]
    struct Genesis {
        chain_id: String,
    }
    let file = std::fs::File::open(path)
        .map_err(|e| CliError::BadInput(format!("cannot read {}: {e}", path.display())))?;
    let genesis: Genesis = serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| {
        CliError::BadInput(format!(
            "{}: expected a genesis JSON object with a string chain_id: {e}",
            path.display()
        ))
    })?;
    if genesis.chain_id.trim().is_empty() {
        return Err(CliError::BadInput(format!(
            "{}: key chain_id: expected a non-empty chain id",
            path.display()
        )));
    }
    Ok(genesis.chain_id)
}
