//! The census a crawl writes: per node id what the walk learned (every address peers gave
//! for it, its NodeInfo: network, version, protocol versions, channels, moniker, listen
//! address; whether it was reached, refused or unreachable, and its RTT), with summaries
//! by version and by network, as a table, JSON (`--json`) or CSV (`--csv`); and who knows
//! whom (each PEX answer is an edge from the node that gave it to every node it named) as a
//! graph (`--graph FILE.dot|FILE.svg`): DOT written by petgraph for Graphviz and other
//! tools, and an SVG picture for a browser composed with the svg crate (nodes on a circle
//! in visit order, so drawing costs O(nodes + edges) even for a whole network's dense PEX
//! graph, where hierarchical layouts take minutes).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use petgraph::dot::{Config, Dot};
use petgraph::graphmap::DiGraphMap;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::node_info::NodeInfo;
use tmp2p_core::NodeId;

use crate::CliError;

/// Why a node was not reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unreached {
    /// No TCP connection (or no address): the node is not there.
    Unreachable { kind: &'static str, detail: String },
    /// It answered but refused our handshake, or failed it.
    Refused { kind: String, detail: String },
}

/// What a crawled node told us.
#[derive(Debug, Clone)]
pub(crate) struct Reached {
    pub(crate) info: NodeInfo,
    pub(crate) rtt: Option<Duration>,
    /// Addresses in its PEX answer (`None`: it did not answer in time).
    pub(crate) addresses: Option<usize>,
}

/// One node visited.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// The address it was dialed at.
    pub(crate) address: NodeAddress,
    pub(crate) outcome: Result<Reached, Unreached>,
}

/// A walk's result (see the module docs).
pub(crate) struct Census {
    nodes: Vec<Found>,
    /// Per node id, every `host:port` the walk heard for it (the dialed one included).
    heard: BTreeMap<NodeId, BTreeSet<String>>,
    /// Who named whom in a PEX answer, between visited nodes.
    edges: BTreeSet<(NodeId, NodeId)>,
}

impl Census {
    /// The census of `nodes` (visit order), with the addresses and edges the answers gave.
    pub(crate) fn new(
        nodes: Vec<Found>,
        mut heard: BTreeMap<NodeId, BTreeSet<String>>,
        edges: BTreeSet<(NodeId, NodeId)>,
    ) -> Self {
        for node in &nodes {
            heard
                .entry(node.address.node_id)
                .or_default()
                .insert(host_port(&node.address));
        }
        let visited: BTreeSet<NodeId> = nodes.iter().map(|n| n.address.node_id).collect();
        let edges = edges
            .into_iter()
            .filter(|(from, to)| visited.contains(from) && visited.contains(to))
            .collect();
        Census {
            nodes,
            heard,
            edges,
        }
    }

    fn addresses(&self, id: NodeId) -> Vec<String> {
        self.heard
            .get(&id)
            .map(|a| a.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Nodes found, reached and refused.
    fn counts(&self) -> (usize, usize, usize) {
        let reached = self.nodes.iter().filter(|f| f.outcome.is_ok()).count();
        let refused = self
            .nodes
            .iter()
            .filter(|f| matches!(f.outcome, Err(Unreached::Refused { .. })))
            .count();
        (self.nodes.len(), reached, refused)
    }

    /// Reached nodes per software version and per network.
    fn summaries(&self) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
        let (mut versions, mut networks) = (BTreeMap::new(), BTreeMap::new());
        for reached in self.nodes.iter().filter_map(|n| n.outcome.as_ref().ok()) {
            *versions.entry(reached.info.version.clone()).or_insert(0) += 1;
            *networks.entry(reached.info.network.clone()).or_insert(0) += 1;
        }
        (versions, networks)
    }

    /// One line per node, then the counts and the summaries.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let id = node.address.node_id;
            let at = host_port(&node.address);
            let line = match &node.outcome {
                Ok(r) => format!(
                    "{id}  {at}  reachable  moniker={:?} version={} network={} p2p={} block={} \
                     channels={} listen={} rtt={}",
                    r.info.moniker,
                    r.info.version,
                    r.info.network,
                    r.info.protocol_version.p2p,
                    r.info.protocol_version.block,
                    hex::encode_upper(&r.info.channels),
                    r.info.listen_addr,
                    r.rtt.map_or_else(
                        || "-".to_owned(),
                        |d| format!("{:.3}ms", d.as_secs_f64() * 1e3)
                    ),
                ),
                Err(Unreached::Refused { kind, detail }) => {
                    format!("{id}  {at}  refused ({kind}): {detail}")
                }
                Err(Unreached::Unreachable { kind, detail }) => {
                    format!("{id}  {at}  unreachable ({kind}): {detail}")
                }
            };
            out.push_str(&line);
            out.push('\n');
        }
        let (total, reached, refused) = self.counts();
        out.push_str(&format!(
            "found {total} nodes: {reached} reached, {refused} refused\n"
        ));
        let (versions, networks) = self.summaries();
        let list = |m: &BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, n)| format!("{k} ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!("versions: {}\n", list(&versions)));
        out.push_str(&format!("networks: {}\n", list(&networks)));
        out
    }

    /// One JSON object: the nodes, the edges and the summaries.
    pub(crate) fn json(&self) -> String {
        let nodes: Vec<serde_json::Value> = self.nodes.iter().map(|n| self.node_json(n)).collect();
        let edges: Vec<[String; 2]> = self
            .edges
            .iter()
            .map(|(a, b)| [a.to_string(), b.to_string()])
            .collect();
        let (total, reached, refused) = self.counts();
        let (versions, networks) = self.summaries();
        serde_json::json!({
            "nodes": nodes,
            "edges": edges,
            "summary": {
                "found": total, "reached": reached, "refused": refused,
                "versions": versions, "networks": networks,
            },
        })
        .to_string()
    }

    fn node_json(&self, node: &Found) -> serde_json::Value {
        let mut value = serde_json::json!({
            "id": node.address.node_id.to_string(),
            "address": host_port(&node.address),
            "addresses": self.addresses(node.address.node_id),
        });
        let extra = match &node.outcome {
            Ok(r) => serde_json::json!({
                "reachable": true,
                "moniker": r.info.moniker,
                "version": r.info.version,
                "network": r.info.network,
                "protocol": {
                    "p2p": r.info.protocol_version.p2p,
                    "block": r.info.protocol_version.block,
                    "app": r.info.protocol_version.app,
                },
                "channels": hex::encode_upper(&r.info.channels),
                "listen_addr": r.info.listen_addr,
                "rtt_us": r.rtt.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
                "addresses_received": r.addresses,
            }),
            Err(Unreached::Refused { kind, detail }) => serde_json::json!({
                "reachable": false, "refused": true, "reason": kind, "detail": detail,
            }),
            Err(Unreached::Unreachable { kind, detail }) => serde_json::json!({
                "reachable": false, "refused": false, "reason": kind, "detail": detail,
            }),
        };
        if let (Some(v), serde_json::Value::Object(extra)) = (value.as_object_mut(), extra) {
            v.extend(extra);
        }
        value
    }

    /// One CSV row per node under a header row.
    ///
    /// # Errors
    /// The CSV writer failed (it writes to memory, so only on a bug).
    pub(crate) fn csv(&self) -> Result<String, CliError> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let failed = |e: csv::Error| CliError::Runtime(format!("cannot write the CSV: {e}"));
        writer
            .write_record([
                "id",
                "address",
                "addresses",
                "status",
                "reason",
                "network",
                "version",
                "p2p",
                "block",
                "app",
                "channels",
                "moniker",
                "listen_addr",
                "rtt_us",
                "addresses_received",
            ])
            .map_err(failed)?;
        for node in &self.nodes {
            let id = node.address.node_id;
            let mut row = vec![
                id.to_string(),
                host_port(&node.address),
                self.addresses(id).join(" "),
            ];
            match &node.outcome {
                Ok(r) => {
                    let v = &r.info.protocol_version;
                    row.extend([
                        "reachable".to_owned(),
                        String::new(),
                        r.info.network.clone(),
                        r.info.version.clone(),
                        v.p2p.to_string(),
                        v.block.to_string(),
                        v.app.to_string(),
                        hex::encode_upper(&r.info.channels),
                        r.info.moniker.clone(),
                        r.info.listen_addr.clone(),
                        r.rtt.map(|d| d.as_micros().to_string()).unwrap_or_default(),
                        r.addresses.map(|n| n.to_string()).unwrap_or_default(),
                    ]);
                }
                Err(unreached) => {
                    let (status, kind) = match unreached {
                        Unreached::Refused { kind, .. } => ("refused", kind.clone()),
                        Unreached::Unreachable { kind, .. } => ("unreachable", (*kind).to_owned()),
                    };
                    row.extend([status.to_owned(), kind]);
                    row.extend(std::iter::repeat_n(String::new(), 10));
                }
            }
            writer.write_record(&row).map_err(failed)?;
        }
        let bytes = writer
            .into_inner()
            .map_err(|e| CliError::Runtime(format!("cannot write the CSV: {e}")))?;
        String::from_utf8(bytes).map_err(|e| CliError::Runtime(format!("CSV not UTF-8: {e}")))
    }

    /// Who knows whom, in Graphviz DOT: one vertex per visited node, labelled with its
    /// moniker (or its short id when it was not reached), one edge per PEX answer entry.
    pub(crate) fn dot(&self) -> String {
        let mut graph: DiGraphMap<usize, ()> = DiGraphMap::new();
        let index: BTreeMap<NodeId, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.address.node_id, i))
            .collect();
        for i in 0..self.nodes.len() {
            graph.add_node(i);
        }
        for (from, to) in &self.edges {
            if let (Some(&a), Some(&b)) = (index.get(from), index.get(to)) {
                graph.add_edge(a, b, ());
            }
        }
        let node_attributes = |_: &DiGraphMap<usize, ()>, (i, _): (usize, &usize)| {
            let Some(node) = self.nodes.get(i) else {
                return String::new();
            };
            let (label, colour) = vertex_label(node);
            format!("label = \"{label}\" style = filled fillcolor = {colour}")
        };
        let dot = Dot::with_attr_getters(
            &graph,
            &[Config::EdgeNoLabel, Config::NodeNoLabel],
            &|_, _| String::new(),
            &node_attributes,
        );
        format!("{dot:?}")
    }

    /// The graph as an SVG picture: nodes on a circle in visit order (the start node at
    /// the top), coloured by outcome and labelled with moniker and short id; edges as
    /// faint lines.
    pub(crate) fn svg(&self) -> String {
        use svg::node::element::{Circle, Line, Rectangle, Text};
        let n = self.nodes.len().max(1);
        // Room for the labels grows with the node count.
        let radius = 120.0 + 12.0 * n as f64;
        let size = 2.0 * radius + 320.0;
        let centre = size / 2.0;
        let position = |i: usize| {
            let angle = std::f64::consts::TAU * i as f64 / n as f64 - std::f64::consts::FRAC_PI_2;
            (centre + radius * angle.cos(), centre + radius * angle.sin())
        };
        let index: BTreeMap<NodeId, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (node.address.node_id, i))
            .collect();
        let background = Rectangle::new()
            .set("width", "100%")
            .set("height", "100%")
            .set("fill", "white");
        let mut document = svg::Document::new()
            .set("viewBox", (0, 0, size, size))
            .set("width", size)
            .set("height", size)
            .add(background);
        let (total, reached, refused) = self.counts();
        let title = format!(
            "{total} nodes: {reached} reached (green), {refused} refused (orange), {} \
             unreachable (grey); {} PEX links",
            total.saturating_sub(reached).saturating_sub(refused),
            self.edges.len()
        );
        document = document.add(
            Text::new(title)
                .set("x", 16)
                .set("y", 24)
                .set("font-family", "monospace")
                .set("font-size", 13),
        );
        for (from, to) in &self.edges {
            if let (Some(&a), Some(&b)) = (index.get(from), index.get(to)) {
                let ((x1, y1), (x2, y2)) = (position(a), position(b));
                document = document.add(
                    Line::new()
                        .set("x1", x1)
                        .set("y1", y1)
                        .set("x2", x2)
                        .set("y2", y2)
                        .set("stroke", "steelblue")
                        .set("stroke-opacity", 0.25),
                );
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let (x, y) = position(i);
            let (label, colour) = vertex_label(node);
            let left = x < centre - 1.0;
            let vertex = Circle::new()
                .set("cx", x)
                .set("cy", y)
                .set("r", 6)
                .set("fill", colour)
                .set("stroke", "black");
            let text = Text::new(label)
                .set("x", if left { x - 10.0 } else { x + 10.0 })
                .set("y", y + 4.0)
                .set("text-anchor", if left { "end" } else { "start" })
                .set("font-family", "monospace")
                .set("font-size", 11);
            document = document.add(vertex).add(text);
        }
        document.to_string()
    }

    /// Writes the graph to `path`: SVG for `.svg`, DOT otherwise.
    ///
    /// # Errors
    /// The file cannot be written.
    pub(crate) fn write_graph(&self, path: &Path) -> Result<(), CliError> {
        let svg = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
        let text = if svg { self.svg() } else { self.dot() };
        std::fs::write(path, text)
            .map_err(|e| CliError::Runtime(format!("cannot write {}: {e}", path.display())))
    }
}

/// A vertex's label (moniker and short id, or the outcome and short id) and colour.
fn vertex_label(node: &Found) -> (String, &'static str) {
    let id = node.address.node_id.to_string();
    let short = id.get(..8).unwrap_or(&id);
    match &node.outcome {
        Ok(r) => (
            format!("{} {short}", label_text(&r.info.moniker)),
            "palegreen",
        ),
        Err(Unreached::Refused { .. }) => (format!("refused {short}"), "orange"),
        Err(Unreached::Unreachable { .. }) => (format!("unreachable {short}"), "lightgray"),
    }
}

/// A moniker as a label: printable ASCII without quotes, backslashes or markup characters
/// (NodeInfo validation allows any printable ASCII), at most 24 characters.
fn label_text(moniker: &str) -> String {
    moniker
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .filter(|c| !matches!(c, '"' | '\\' | '<' | '>' | '&'))
        .take(24)
        .collect()
}

/// `host:port`, IPv6 hosts in brackets.
pub(crate) fn host_port(address: &NodeAddress) -> String {
    match address.hostname.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{}", address.port),
        _ => format!("{}:{}", address.hostname, address.port),
    }
}
