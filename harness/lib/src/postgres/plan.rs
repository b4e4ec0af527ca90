//! Query plans, read from `EXPLAIN (FORMAT JSON)` or `auto_explain`'s JSON output.

use serde_json::Value;

/// One node of a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanNode {
    /// `Seq Scan`, `Index Scan`, `Sort`, `Limit`, ...
    pub node_type: String,
    /// Whether the node runs in parallel workers (`Parallel Seq Scan`).
    pub parallel: bool,
    /// The table a scan reads.
    pub relation: Option<String>,
    /// The index a scan uses.
    pub index: Option<String>,
    /// Rows the planner expects the node to produce per loop.
    pub plan_rows: Option<f64>,
    /// Rows the node produced per loop (with ANALYZE).
    pub actual_rows: Option<f64>,
    /// How many times the node ran (with ANALYZE).
    pub loops: Option<f64>,
    /// Rows read and thrown away by the node's filter (with ANALYZE).
    pub rows_removed_by_filter: Option<f64>,
    /// Shared buffers hit in cache (with BUFFERS), this node and below.
    pub shared_hit_blocks: Option<i64>,
    /// Shared buffers read (with BUFFERS), this node and below.
    pub shared_read_blocks: Option<i64>,
    /// The node's children.
    pub children: Vec<PlanNode>,
}

/// A whole plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The statement, when the source includes it (auto_explain does).
    pub query: Option<String>,
    /// Execution (or, from auto_explain, statement) time in milliseconds.
    pub duration_ms: Option<f64>,
    /// The top node.
    pub root: PlanNode,
}

impl PlanNode {
    fn from_json(node: &Value) -> Option<PlanNode> {
        let text = |key: &str| node.get(key).and_then(Value::as_str).map(str::to_owned);
        let number = |key: &str| node.get(key).and_then(Value::as_f64);
        let integer = |key: &str| node.get(key).and_then(Value::as_i64);
        let children = node
            .get("Plans")
            .and_then(Value::as_array)
            .map(|plans| plans.iter().filter_map(PlanNode::from_json).collect())
            .unwrap_or_default();
        Some(PlanNode {
            node_type: text("Node Type")?,
            parallel: node
                .get("Parallel Aware")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            relation: text("Relation Name"),
            index: text("Index Name"),
            plan_rows: number("Plan Rows"),
            actual_rows: number("Actual Rows"),
            loops: number("Actual Loops"),
            rows_removed_by_filter: number("Rows Removed by Filter"),
            shared_hit_blocks: integer("Shared Hit Blocks"),
            shared_read_blocks: integer("Shared Read Blocks"),
            children,
        })
    }

    /// The node as a reader of EXPLAIN would name it: `Parallel Seq Scan on orders`,
    /// `Index Scan using idx on orders`.
    pub fn label(&self) -> String {
        let mut label = if self.parallel {
            format!("Parallel {}", self.node_type)
        } else {
            self.node_type.clone()
        };
        if let Some(index) = &self.index {
            label.push_str(&format!(" using {index}"));
        }
        if let Some(relation) = &self.relation {
            label.push_str(&format!(" on {relation}"));
        }
        label
    }

    /// Whether the node reads `relation` through an index.
    pub fn is_index_scan(&self) -> bool {
        matches!(
            self.node_type.as_str(),
            "Index Scan" | "Index Only Scan" | "Bitmap Index Scan" | "Bitmap Heap Scan"
        )
    }

    fn visit<'a>(&'a self, out: &mut Vec<&'a PlanNode>) {
        out.push(self);
        for child in &self.children {
            child.visit(out);
        }
    }
}

impl Plan {
    /// Reads `EXPLAIN (FORMAT JSON)` output: `[{"Plan": …, "Execution Time": …}]`.
    pub fn from_explain_json(json: &Value) -> Option<Plan> {
        let top = json
            .as_array()
            .and_then(|items| items.first())
            .unwrap_or(json);
        Some(Plan {
            query: top
                .get("Query Text")
                .and_then(Value::as_str)
                .map(str::to_owned),
            duration_ms: top.get("Execution Time").and_then(Value::as_f64),
            root: PlanNode::from_json(top.get("Plan")?)?,
        })
    }

    /// Reads an `auto_explain` log message: `duration: 1.2 ms  plan:\n{…}`.
    pub fn from_auto_explain(message: &str) -> Option<Plan> {
        let (head, body) = message.split_once("plan:")?;
        let duration_ms = head
            .trim()
            .strip_prefix("duration:")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|number| number.parse().ok());
        let json: Value = serde_json::from_str(body.trim()).ok()?;
        let mut plan = Plan::from_explain_json(&json)?;
        plan.duration_ms = duration_ms;
        Some(plan)
    }

    /// Whether the plan was measured as it ran (`ANALYZE`: actual rows and
    /// loops), rather than only planned (a generic plan's estimates).
    pub fn is_analyzed(&self) -> bool {
        self.root.actual_rows.is_some()
    }

    /// Shared buffers the whole statement touched, in cache or read
    /// (`BUFFERS`); `None` when the plan did not measure them.
    pub fn shared_blocks(&self) -> Option<i64> {
        Some(self.root.shared_hit_blocks? + self.root.shared_read_blocks?)
    }

    /// Every node, top-down.
    pub fn nodes(&self) -> Vec<&PlanNode> {
        let mut out = Vec::new();
        self.root.visit(&mut out);
        out
    }

    /// The nodes that scan `relation`.
    pub fn scans_of(&self, relation: &str) -> Vec<&PlanNode> {
        self.nodes()
            .into_iter()
            .filter(|node| node.relation.as_deref() == Some(relation))
            .collect()
    }

    /// How many nodes read `relation` sequentially.
    pub fn seq_scans_on(&self, relation: &str) -> usize {
        self.scans_of(relation)
            .iter()
            .filter(|node| node.node_type == "Seq Scan")
            .count()
    }

    /// The chain of nodes on one line: `Limit → Gather Merge → Sort → Parallel Seq Scan on orders`.
    pub fn outline(&self) -> String {
        self.nodes()
            .iter()
            .map(|node| node.label())
            .collect::<Vec<_>>()
            .join(" → ")
    }

    /// Rows thrown away by filters, summed over all nodes and loops.
    pub fn rows_removed_by_filter(&self) -> f64 {
        self.nodes()
            .iter()
            .filter_map(|node| Some(node.rows_removed_by_filter? * node.loops.unwrap_or(1.0)))
            .sum()
    }

    /// The plan as one line of evidence.
    pub fn evidence_line(&self) -> String {
        let mut line = format!("plan: {}", self.outline());
        let removed = self.rows_removed_by_filter();
        if removed > 0.0 {
            line.push_str(&format!("; rows removed by filter {removed:.0}"));
        }
        if let (Some(hit), Some(read)) = (self.root.shared_hit_blocks, self.root.shared_read_blocks)
        {
            line.push_str(&format!("; shared buffers hit {hit}, read {read}"));
        }
        if let Some(ms) = self.duration_ms {
            line.push_str(&format!("; {ms:.2} ms"));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTO_EXPLAIN: &str = r#"duration: 73.512 ms  plan:
{
  "Query Text": "SELECT * FROM orders WHERE user_id = $1 ORDER BY created_at DESC LIMIT 10",
  "Plan": {
    "Node Type": "Limit", "Parallel Aware": false, "Actual Rows": 10, "Actual Loops": 1,
    "Shared Hit Blocks": 8334, "Shared Read Blocks": 0,
    "Plans": [{
      "Node Type": "Gather Merge", "Parallel Aware": false, "Actual Rows": 10, "Actual Loops": 1,
      "Plans": [{
        "Node Type": "Sort", "Actual Rows": 9, "Actual Loops": 3,
        "Plans": [{
          "Node Type": "Seq Scan", "Parallel Aware": true, "Relation Name": "orders",
          "Actual Rows": 33, "Actual Loops": 3, "Rows Removed by Filter": 333300
        }]
      }]
    }]
  }
}"#;

    #[test]
    fn reads_auto_explain_output() {
        let plan = Plan::from_auto_explain(AUTO_EXPLAIN).expect("plan");
        assert_eq!(plan.duration_ms, Some(73.512));
        assert!(plan
            .query
            .as_deref()
            .unwrap()
            .starts_with("SELECT * FROM orders"));
        assert_eq!(
            plan.outline(),
            "Limit → Gather Merge → Sort → Parallel Seq Scan on orders"
        );
        assert_eq!(plan.seq_scans_on("orders"), 1);
        assert!(plan.is_analyzed());
        assert_eq!(plan.rows_removed_by_filter(), 999_900.0);
        assert!(plan
            .evidence_line()
            .contains("shared buffers hit 8334, read 0"));
    }

    #[test]
    fn reads_explain_json_with_an_index_scan() {
        let json: Value = serde_json::from_str(
            r#"[{"Plan": {"Node Type": "Limit", "Plan Rows": 10, "Plans": [{"Node Type": "Index Scan",
                "Index Name": "idx_orders_user_id_created_at", "Relation Name": "orders"}]},
                "Execution Time": 0.111}]"#,
        )
        .unwrap();
        let plan = Plan::from_explain_json(&json).unwrap();
        assert_eq!(plan.seq_scans_on("orders"), 0);
        assert!(plan.scans_of("orders")[0].is_index_scan());
        assert_eq!(
            plan.outline(),
            "Limit → Index Scan using idx_orders_user_id_created_at on orders"
        );
        assert_eq!(plan.duration_ms, Some(0.111));
        // Planned, not run: estimates only.
        assert!(!plan.is_analyzed());
        assert_eq!(plan.root.plan_rows, Some(10.0));
    }

    #[test]
    fn ignores_messages_without_a_plan() {
        assert_eq!(
            Plan::from_auto_explain("duration: 61.2 ms  execute s1: SELECT 1"),
            None
        );
    }
}
