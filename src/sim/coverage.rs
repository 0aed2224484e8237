//! Node and edge coverage of a scenario by simulated calls.
//!
//! The denominators come from the compiled scenario: every node, and every transition
//! ([`Scenario::all_edges`]: each `next`, `on.<key>`, `if.N`/`else`, `case.<v>`/`default`,
//! a `call` into its sub-dialogue, and each global handler once). A call covers what its
//! dialogue journal shows it entered and took.
//!
//! Not here: running the calls (that is [`super::run_call`] and [`super::script`]).

use std::collections::BTreeSet;

use super::SimReport;
use crate::dialogue::EdgeId;
use crate::scenario::{NodeId, Scenario};

/// Coverage accumulated over calls of one scenario.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    pub nodes_hit: BTreeSet<NodeId>,
    pub edges_hit: BTreeSet<EdgeId>,
}

impl Coverage {
    pub fn add(&mut self, report: &SimReport) {
        self.nodes_hit.extend(report.nodes.iter().copied());
        self.edges_hit.extend(report.edges.iter().cloned());
    }

    fn all_edges(scenario: &Scenario) -> Vec<EdgeId> {
        let mut out: Vec<EdgeId> = scenario
            .all_edges()
            .into_iter()
            .map(|(from, j)| EdgeId { from, key: j.key })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// (covered, total) nodes.
    pub fn nodes(&self, scenario: &Scenario) -> (usize, usize) {
        let total = scenario.nodes.len();
        let hit = (0..total)
            .filter(|i| {
                self.nodes_hit
                    .contains(&NodeId(u32::try_from(*i).unwrap_or(u32::MAX)))
            })
            .count();
        (hit, total)
    }

    /// (covered, total) edges.
    pub fn edges(&self, scenario: &Scenario) -> (usize, usize) {
        let all = Self::all_edges(scenario);
        let hit = all.iter().filter(|e| self.edges_hit.contains(e)).count();
        (hit, all.len())
    }

    /// Names of the nodes no call entered.
    pub fn uncovered_nodes(&self, scenario: &Scenario) -> Vec<String> {
        scenario
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                !self
                    .nodes_hit
                    .contains(&NodeId(u32::try_from(*i).unwrap_or(u32::MAX)))
            })
            .map(|(_, n)| n.qualified.clone())
            .collect()
    }

    /// The transitions no call took, as `from [key] → to`.
    pub fn uncovered_edges(&self, scenario: &Scenario) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for (from, jump) in scenario.all_edges() {
            let id = EdgeId {
                from,
                key: jump.key.clone(),
            };
            if self.edges_hit.contains(&id) || !seen.insert(id) {
                continue;
            }
            let from = from.map_or("any question".to_string(), |f| {
                scenario.node_name(f).to_string()
            });
            out.push(format!(
                "{from} [{}] → {}",
                jump.key,
                scenario.node_name(jump.target)
            ));
        }
        out
    }
}

/// `hit / total` as a percentage (100 when there is nothing to cover).
pub fn percent(hit: usize, total: usize) -> f64 {
    if total == 0 {
        100.0
    } else {
        hit as f64 * 100.0 / total as f64
    }
}
