//! A direct serialization graph (Adya): transactions as nodes, their dependencies as edges
//! (`ww`: installed the next version of a key; `wr`: read the version another installed;
//! `rw`: read a version (or a range) that another overwrote with the next version), and the
//! two questions isolation checkers ask of it:
//!
//! * [`Graph::cycle`]: any cycle — a history with one is not serializable (G0, G1c, G2);
//! * [`Graph::g_single`]: a cycle with exactly one `rw` edge (G-single: read skew), which
//!   snapshot isolation forbids.
//!
//! ```
//! use khonsu_tests::dsg::{Edge, Graph};
//!
//! // Write skew: each read what the other wrote, neither saw the other's write.
//! let mut g = Graph::new(2);
//! g.add(0, 1, Edge::Rw, "T0 read x, T1 wrote x");
//! g.add(1, 0, Edge::Rw, "T1 read y, T0 wrote y");
//! assert!(g.cycle().is_some());
//! assert!(g.g_single().is_none()); // two rw edges: allowed by snapshot isolation
//! ```

use std::fmt;

/// The kind of a dependency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Edge {
    /// Write-write: the target installed the next version of a key.
    Ww,
    /// Write-read: the target read a version the source installed.
    Wr,
    /// Read-write (anti-dependency): the source read a version (or scanned a range) and the
    /// target installed the next version.
    Rw,
}

impl fmt::Display for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ww => "ww",
            Self::Wr => "wr",
            Self::Rw => "rw",
        })
    }
}

/// One step of a cycle: from a node, by an edge, and why the edge exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The source node.
    pub from: usize,
    /// The target node.
    pub to: usize,
    /// The dependency.
    pub edge: Edge,
    /// What produced it (for reports).
    pub why: String,
}

/// A dependency graph over `n` transactions.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    out: Vec<Vec<Step>>,
}

impl Graph {
    /// A graph of `n` transactions and no edges.
    #[must_use]
    pub fn new(n: usize) -> Self {
        Self {
            out: vec![Vec::new(); n],
        }
    }

    /// Adds `from → to` (self-loops are ignored: a transaction depends on itself trivially).
    ///
    /// # Panics
    /// If a node is out of range.
    pub fn add(&mut self, from: usize, to: usize, edge: Edge, why: impl Into<String>) {
        assert!(to < self.out.len(), "node {to} out of range");
        if from == to {
            return;
        }
        let Some(out) = self.out.get_mut(from) else {
            panic!("node {from} out of range")
        };
        out.push(Step {
            from,
            to,
            edge,
            why: why.into(),
        });
    }

    /// Number of edges.
    #[must_use]
    pub fn edges(&self) -> usize {
        self.out.iter().map(Vec::len).sum()
    }

    /// A cycle, if the graph has one: its steps in order.
    #[must_use]
    pub fn cycle(&self) -> Option<Vec<Step>> {
        self.cycle_through(|_| true)
    }

    /// A cycle whose steps all satisfy `keep`, if any (iterative depth-first search).
    fn cycle_through(&self, keep: impl Fn(&Step) -> bool) -> Option<Vec<Step>> {
        #[derive(Clone, Copy, PartialEq, Eq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let n = self.out.len();
        let mut mark = vec![Mark::New; n];
        for root in 0..n {
            if mark.get(root) != Some(&Mark::New) {
                continue;
            }
            // The path: (node, next edge index), and the steps taken along it.
            let mut path: Vec<(usize, usize)> = vec![(root, 0)];
            let mut taken: Vec<Step> = Vec::new();
            if let Some(m) = mark.get_mut(root) {
                *m = Mark::OnPath;
            }
            while let Some(&mut (node, ref mut next)) = path.last_mut() {
                let edges = self.out.get(node).map_or(&[][..], Vec::as_slice);
                let Some(step) = edges.get(*next) else {
                    if let Some(m) = mark.get_mut(node) {
                        *m = Mark::Done;
                    }
                    path.pop();
                    taken.pop();
                    continue;
                };
                *next += 1;
                if !keep(step) {
                    continue;
                }
                match mark.get(step.to).copied() {
                    Some(Mark::OnPath) => {
                        let start = path.iter().position(|&(p, _)| p == step.to).unwrap_or(0);
                        let mut cycle: Vec<Step> = taken.get(start..).unwrap_or(&[]).to_vec();
                        cycle.push(step.clone());
                        return Some(cycle);
                    }
                    Some(Mark::New) => {
                        if let Some(m) = mark.get_mut(step.to) {
                            *m = Mark::OnPath;
                        }
                        taken.push(step.clone());
                        path.push((step.to, 0));
                    }
                    _ => {}
                }
            }
        }
        None
    }

    /// A path from `from` to `to` using only `ww` and `wr` edges, if any (breadth-first).
    fn path_without_rw(&self, from: usize, to: usize) -> Option<Vec<Step>> {
        let n = self.out.len();
        let mut came: Vec<Option<Step>> = vec![None; n];
        let mut seen = vec![false; n];
        let mut queue = std::collections::VecDeque::from([from]);
        if let Some(s) = seen.get_mut(from) {
            *s = true;
        }
        while let Some(node) = queue.pop_front() {
            if node == to {
                let mut steps = Vec::new();
                let mut at = to;
                while at != from {
                    let Some(step) = came.get(at).cloned().flatten() else {
                        break;
                    };
                    at = step.from;
                    steps.push(step);
                }
                steps.reverse();
                return Some(steps);
            }
            for step in self.out.get(node).map_or(&[][..], Vec::as_slice) {
                if step.edge == Edge::Rw || seen.get(step.to).copied().unwrap_or(true) {
                    continue;
                }
                if let Some(s) = seen.get_mut(step.to) {
                    *s = true;
                }
                if let Some(c) = came.get_mut(step.to) {
                    *c = Some(step.clone());
                }
                queue.push_back(step.to);
            }
        }
        None
    }

    /// A cycle with exactly one `rw` edge (G-single), if any: an `rw` edge `u → v` and a path
    /// back from `v` to `u` of `ww` and `wr` edges. (A cycle of `ww`/`wr` edges alone is
    /// [`cycle`](Self::cycle)'s to find: G0/G1c.)
    #[must_use]
    pub fn g_single(&self) -> Option<Vec<Step>> {
        for steps in &self.out {
            for rw in steps.iter().filter(|s| s.edge == Edge::Rw) {
                if let Some(mut back) = self.path_without_rw(rw.to, rw.from) {
                    back.insert(0, rw.clone());
                    return Some(back);
                }
            }
        }
        None
    }

    /// A cycle of `ww` and `wr` edges only (G0 or G1c), if any.
    #[must_use]
    pub fn g1c(&self) -> Option<Vec<Step>> {
        self.cycle_through(|s| s.edge != Edge::Rw)
    }
}

/// A cycle as one line per step.
#[must_use]
pub fn describe(cycle: &[Step], name: impl Fn(usize) -> String) -> String {
    cycle
        .iter()
        .map(|s| format!("{} -{}-> {}: {}", name(s.from), s.edge, name(s.to), s.why))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acyclic_histories_have_no_cycle() {
        let mut g = Graph::new(4);
        g.add(0, 1, Edge::Ww, "x");
        g.add(1, 2, Edge::Wr, "x");
        g.add(0, 2, Edge::Rw, "y");
        g.add(2, 3, Edge::Rw, "z");
        g.add(3, 3, Edge::Ww, "self loops are ignored");
        assert_eq!(g.edges(), 4);
        assert!(g.cycle().is_none());
        assert!(g.g_single().is_none());
        assert!(g.g1c().is_none());
    }

    #[test]
    fn a_cycle_is_reported_in_order() {
        let mut g = Graph::new(5);
        g.add(0, 1, Edge::Wr, "a");
        g.add(1, 2, Edge::Ww, "b");
        g.add(2, 3, Edge::Rw, "c");
        g.add(3, 1, Edge::Wr, "d");
        g.add(3, 4, Edge::Ww, "e");
        let Some(cycle) = g.cycle() else {
            panic!("1 → 2 → 3 → 1")
        };
        let nodes: Vec<(usize, usize)> = cycle.iter().map(|s| (s.from, s.to)).collect();
        assert_eq!(nodes, vec![(1, 2), (2, 3), (3, 1)]);
        // One rw edge in it: G-single.
        let Some(single) = g.g_single() else {
            panic!("the cycle has one rw edge")
        };
        assert_eq!(single.first().map(|s| s.edge), Some(Edge::Rw));
        assert_eq!(single.iter().filter(|s| s.edge == Edge::Rw).count(), 1);
        assert!(g.g1c().is_none());
        let text = describe(&cycle, |i| format!("T{i}"));
        assert!(text.contains("T2 -rw-> T3: c"), "{text}");
    }

    #[test]
    fn write_skew_is_a_cycle_but_not_g_single() {
        let mut g = Graph::new(2);
        g.add(0, 1, Edge::Rw, "x");
        g.add(1, 0, Edge::Rw, "y");
        assert!(g.cycle().is_some());
        assert!(g.g_single().is_none());
    }

    #[test]
    fn circular_information_flow_is_g1c() {
        let mut g = Graph::new(2);
        g.add(0, 1, Edge::Wr, "x");
        g.add(1, 0, Edge::Ww, "y");
        assert!(g.g1c().is_some());
        assert!(g.cycle().is_some());
    }
}
