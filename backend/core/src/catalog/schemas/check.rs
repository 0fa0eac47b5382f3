//! The static check a tenant's JSON Schema passes before it is compiled: bounded size and nesting,
//! local references only, no reference cycle that stays on one payload location (a validator
//! would recurse without end and overflow its stack), and a bounded number of subschemas applied
//! to any one payload location (`allOf: [A, A]` nested or recursed doubles the work at each
//! level). What passes validates any payload in time linear in the payload, with recursion no
//! deeper than [`MAX_CHAIN`] subschemas per payload level.
//!
//! The schema is seen as a graph of subschemas (nodes are JSON pointers). An edge either stays on
//! the same payload location (`$ref`, `allOf`, `anyOf`, `oneOf`, `not`, `if`/`then`/`else`,
//! `dependentSchemas`) or moves into a child of it (`properties`, `items`, …). The same-location
//! edges must form a DAG; walking down the payload level by level, the check counts how many
//! times each subschema can be applied to one location (the worst child of each kind), and
//! refuses the schema when a level would apply more than [`MAX_APPLIED_PER_LOCATION`].

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

/// The largest schema accepted, as JSON text.
pub const MAX_SCHEMA_BYTES: usize = 256 * 1024;
/// The deepest JSON nesting of a schema document.
const MAX_NESTING: usize = 64;
/// The most distinct subschemas a schema may have.
const MAX_SUBSCHEMAS: usize = 10_000;
/// The longest chain of subschemas applied to one payload location (each one a few stack frames
/// of the validator).
pub const MAX_CHAIN: usize = 32;
/// The most subschema applications on one payload location.
const MAX_APPLIED_PER_LOCATION: u64 = 2_000;
/// The most distinct sets of subschemas applying to payload locations that the check explores.
const MAX_STATES: usize = 2_000;
/// The deepest payload: serde_json refuses deeper documents when the request is parsed.
pub const MAX_PAYLOAD_DEPTH: usize = 128;

/// Why a schema is refused: a sentence for the `body.schema` validation error.
pub type Refusal = String;

/// Which payload child an edge moves into; edges of one kind can hit the same child.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Child {
    /// `properties/<name>`.
    Property(String),
    /// `patternProperties`, `additionalProperties`, `unevaluatedProperties`, `propertyNames`:
    /// may apply to any property.
    AnyProperty,
    /// `items`, `prefixItems`, `additionalItems`, `contains`, `unevaluatedItems`.
    Item,
}

#[derive(Default)]
struct Node {
    /// Same-location edges: (target, how it is reached, e.g. `$ref` or `allOf/0`).
    same: Vec<(usize, String)>,
    /// Edges into a child of the location.
    down: Vec<(usize, Child)>,
}

struct Graph<'a> {
    root: &'a Value,
    ids: HashMap<String, usize>,
    pointers: Vec<String>,
    nodes: Vec<Node>,
    anchors: HashMap<String, String>,
}

/// Checks `schema`; `Err` says why it is refused, naming the keyword or `$ref` at fault.
pub fn check(schema: &Value) -> Result<(), Refusal> {
    let size = serde_json::to_string(schema).map(|text| text.len()).unwrap_or(usize::MAX);
    if size > MAX_SCHEMA_BYTES {
        return Err(format!("the schema is {size} bytes; at most {MAX_SCHEMA_BYTES} are accepted"));
    }
    if nesting(schema) > MAX_NESTING {
        return Err(format!("the schema is nested more than {MAX_NESTING} levels deep"));
    }
    let mut graph = Graph {
        root: schema,
        ids: HashMap::new(),
        pointers: Vec::new(),
        nodes: Vec::new(),
        anchors: HashMap::new(),
    };
    collect_anchors(schema, "", &mut graph.anchors)?;
    graph.build()?;
    let order = graph.same_location_order()?;
    graph.check_cost(&order)
}

fn nesting(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// `$anchor`s (and `$id`, which only the root may have: a nested base URI would change what
/// `#…` references mean below it).
fn collect_anchors(
    value: &Value,
    pointer: &str,
    anchors: &mut HashMap<String, String>,
) -> Result<(), Refusal> {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(anchor)) = map.get("$anchor") {
                anchors.insert(anchor.clone(), pointer.to_owned());
            }
            if !pointer.is_empty() && map.get("$id").is_some_and(Value::is_string) {
                return Err(format!("$id is allowed only at the root of the schema (found at #{pointer})"));
            }
            for keyword in ["$dynamicRef", "$recursiveRef", "$dynamicAnchor", "$recursiveAnchor"] {
                if map.contains_key(keyword) {
                    return Err(format!("{keyword} is not supported (found at #{pointer}); use $ref"));
                }
            }
            for (key, child) in map {
                collect_anchors(child, &format!("{pointer}/{}", escape(key)), anchors)?;
            }
        }
        Value::Array(items) => {
            for (idx, child) in items.iter().enumerate() {
                collect_anchors(child, &format!("{pointer}/{idx}"), anchors)?;
            }
        }
        _ => {}
    }
    Ok(())
}

impl Graph<'_> {
    fn node(&mut self, pointer: String, stack: &mut Vec<usize>) -> Result<usize, Refusal> {
        if let Some(&id) = self.ids.get(&pointer) {
            return Ok(id);
        }
        if self.nodes.len() >= MAX_SUBSCHEMAS {
            return Err(format!("the schema has more than {MAX_SUBSCHEMAS} subschemas"));
        }
        let id = self.nodes.len();
        self.ids.insert(pointer.clone(), id);
        self.pointers.push(pointer);
        self.nodes.push(Node::default());
        stack.push(id);
        Ok(id)
    }

    /// Finds every subschema reachable from the root and its edges.
    fn build(&mut self) -> Result<(), Refusal> {
        let mut stack = Vec::new();
        self.node(String::new(), &mut stack)?;
        while let Some(id) = stack.pop() {
            let pointer = self.pointers[id].clone();
            let Some(Value::Object(map)) = self.root.pointer(&pointer) else { continue };
            let mut same = Vec::new();
            let mut down = Vec::new();
            for (keyword, value) in map {
                let at = format!("{pointer}/{}", escape(keyword));
                match keyword.as_str() {
                    "$ref" => {
                        let Value::String(reference) = value else { continue };
                        same.push((self.resolve(reference, &pointer)?, "$ref".to_owned()));
                    }
                    "not" | "if" | "then" | "else" => same.push((at, keyword.clone())),
                    "allOf" | "anyOf" | "oneOf" => {
                        for idx in 0..value.as_array().map_or(0, Vec::len) {
                            same.push((format!("{at}/{idx}"), format!("{keyword}/{idx}")));
                        }
                    }
                    "dependentSchemas" | "dependencies" => {
                        for (name, sub) in value.as_object().into_iter().flatten() {
                            if sub.is_object() || sub.is_boolean() {
                                same.push((format!("{at}/{}", escape(name)), format!("{keyword}/{name}")));
                            }
                        }
                    }
                    "properties" => {
                        for name in value.as_object().into_iter().flatten().map(|(name, _)| name) {
                            down.push((format!("{at}/{}", escape(name)), Child::Property(name.clone())));
                        }
                    }
                    "patternProperties" => {
                        for name in value.as_object().into_iter().flatten().map(|(name, _)| name) {
                            down.push((format!("{at}/{}", escape(name)), Child::AnyProperty));
                        }
                    }
                    "additionalProperties" | "unevaluatedProperties" | "propertyNames" => {
                        down.push((at, Child::AnyProperty));
                    }
                    "items" | "prefixItems" if value.is_array() => {
                        for idx in 0..value.as_array().map_or(0, Vec::len) {
                            down.push((format!("{at}/{idx}"), Child::Item));
                        }
                    }
                    "items" | "additionalItems" | "contains" | "unevaluatedItems" => {
                        down.push((at, Child::Item))
                    }
                    _ => {}
                }
            }
            for (target, label) in same {
                let target = self.node(target, &mut stack)?;
                self.nodes[id].same.push((target, label));
            }
            for (target, child) in down {
                let target = self.node(target, &mut stack)?;
                self.nodes[id].down.push((target, child));
            }
        }
        Ok(())
    }

    /// The pointer a local `$ref` names (`#`, `#/json/pointer` or `#anchor`).
    fn resolve(&self, reference: &str, from: &str) -> Result<String, Refusal> {
        let root_id = self.root.get("$id").and_then(Value::as_str).unwrap_or_default();
        let fragment = match reference.split_once('#') {
            Some((base, fragment)) if base.is_empty() || base == root_id.trim_end_matches('#') => fragment,
            _ => {
                return Err(format!(
                    "the $ref {reference:?} at #{from} is not local: only #, #/json/pointer and #anchor references are allowed"
                ));
            }
        };
        let pointer = if fragment.is_empty() || fragment.starts_with('/') {
            percent_decode(fragment)
        } else {
            match self.anchors.get(fragment) {
                Some(pointer) => pointer.clone(),
                None => {
                    return Err(format!("the $ref {reference:?} at #{from} names no $anchor of the schema"));
                }
            }
        };
        match self.root.pointer(&pointer) {
            Some(Value::Object(_) | Value::Bool(_)) => Ok(pointer),
            _ => Err(format!("the $ref {reference:?} at #{from} does not lead to a schema")),
        }
    }

    /// The same-location edges in topological order; `Err` names a cycle.
    fn same_location_order(&self) -> Result<Vec<usize>, Refusal> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let mut marks = vec![Mark::New; self.nodes.len()];
        let mut order = Vec::with_capacity(self.nodes.len());
        for start in 0..self.nodes.len() {
            if marks[start] != Mark::New {
                continue;
            }
            // (node, next edge to follow); the stack is the current path.
            let mut path: Vec<(usize, usize)> = vec![(start, 0)];
            marks[start] = Mark::Open;
            while let Some(&mut (node, ref mut next)) = path.last_mut() {
                let Some((target, _)) = self.nodes[node].same.get(*next) else {
                    marks[node] = Mark::Done;
                    order.push(node);
                    path.pop();
                    continue;
                };
                *next += 1;
                match marks[*target] {
                    Mark::New => {
                        marks[*target] = Mark::Open;
                        path.push((*target, 0));
                    }
                    Mark::Open => return Err(self.describe_cycle(&path, *target)),
                    Mark::Done => {}
                }
            }
        }
        order.reverse();
        // Longest same-location chain: the validator's recursion per payload level.
        let mut longest = vec![1usize; self.nodes.len()];
        for &node in order.iter().rev() {
            for (target, _) in &self.nodes[node].same {
                longest[node] = longest[node].max(longest[*target] + 1);
            }
        }
        if let Some(node) = (0..self.nodes.len()).find(|&n| longest[n] > MAX_CHAIN) {
            return Err(format!(
                "the schema chains more than {MAX_CHAIN} subschemas ($ref, allOf, …) on one payload location, starting at #{}",
                self.pointers[node]
            ));
        }
        Ok(order)
    }

    fn describe_cycle(&self, path: &[(usize, usize)], back_to: usize) -> Refusal {
        let start = path.iter().position(|(node, _)| *node == back_to).unwrap_or(0);
        let mut steps = Vec::new();
        let mut culprit = None;
        for &(node, next) in &path[start..] {
            let (target, label) = &self.nodes[node].same[next - 1];
            if label == "$ref" && culprit.is_none() {
                culprit = Some(node);
            }
            steps.push(format!("#{} -({label})-> #{}", self.pointers[node], self.pointers[*target]));
        }
        let at = culprit.map_or_else(|| self.pointers[back_to].clone(), |node| self.pointers[node].clone());
        format!(
            "the $ref at #{at} leads back to itself without moving into the payload, which would never end: {}",
            steps.join(", ")
        )
    }

    /// Explores what can apply to one payload location: from the root's `{root: 1}`, each state
    /// (how many times each subschema applies to a location) is closed over the same-location
    /// edges and checked, then leads to one state per kind of child. States repeat (recursion
    /// reaches the same set again), so the walk ends; a schema with more distinct states than
    /// [`MAX_STATES`] is refused as too complex.
    fn check_cost(&self, order: &[usize]) -> Result<(), Refusal> {
        let mut seen: HashSet<BTreeMap<usize, u64>> = HashSet::new();
        let mut queue: Vec<(BTreeMap<usize, u64>, usize)> = vec![(BTreeMap::from([(0, 1)]), 0)];
        while let Some((applied, depth)) = queue.pop() {
            if depth > MAX_PAYLOAD_DEPTH || !seen.insert(applied.clone()) {
                continue;
            }
            if seen.len() > MAX_STATES {
                return Err(format!(
                    "the schema is too complex to check: more than {MAX_STATES} different sets of subschemas apply to payload locations"
                ));
            }
            // Close over the same-location edges (a DAG, in topological order).
            let mut counts = vec![0u64; self.nodes.len()];
            for (&node, &n) in &applied {
                counts[node] = n;
            }
            for &node in order {
                let n = counts[node];
                if n == 0 {
                    continue;
                }
                for (target, _) in &self.nodes[node].same {
                    counts[*target] = counts[*target].saturating_add(n);
                }
            }
            let total: u64 = counts.iter().fold(0u64, |sum, n| sum.saturating_add(*n));
            if total > MAX_APPLIED_PER_LOCATION {
                return Err(format!(
                    "the schema applies more than {MAX_APPLIED_PER_LOCATION} subschemas to one payload location \
                     (at payload depth {depth}): the same subschemas are reached through several allOf/anyOf/$ref \
                     paths at once"
                ));
            }
            // One payload child of each kind, and what applies to it.
            let mut children: BTreeMap<Child, BTreeMap<usize, u64>> = BTreeMap::new();
            for (node, &n) in counts.iter().enumerate() {
                if n == 0 {
                    continue;
                }
                for (target, child) in &self.nodes[node].down {
                    let entry = children.entry(child.clone()).or_default().entry(*target).or_default();
                    *entry = entry.saturating_add(n);
                }
            }
            // A named property also gets what applies to any property.
            let any_property = children.get(&Child::AnyProperty).cloned().unwrap_or_default();
            for (child, mut targets) in children {
                if matches!(child, Child::Property(_)) {
                    for (&target, &n) in &any_property {
                        let entry = targets.entry(target).or_default();
                        *entry = entry.saturating_add(n);
                    }
                }
                queue.push((targets, depth + 1));
            }
        }
        Ok(())
    }
}

fn percent_decode(fragment: &str) -> String {
    let bytes = fragment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while idx < bytes.len() {
        if bytes[idx] == b'%'
            && let Some(hex) = fragment.get(idx + 1..idx + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            idx += 3;
            continue;
        }
        out.push(bytes[idx]);
        idx += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[track_caller]
    fn accepted(schema: Value) {
        if let Err(refusal) = check(&schema) {
            panic!("{schema} was refused: {refusal}");
        }
    }

    #[track_caller]
    fn refused(schema: Value, expected: &str) {
        match check(&schema) {
            Ok(()) => panic!("{schema} was accepted"),
            Err(refusal) => assert!(refusal.contains(expected), "{schema}: {refusal}"),
        }
    }

    #[test]
    fn ordinary_schemas_are_accepted() {
        accepted(json!(true));
        accepted(json!({}));
        accepted(json!({"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}));
        accepted(
            json!({"$defs": {"money": {"type": "integer"}}, "properties": {"amount": {"$ref": "#/$defs/money"}, "fee": {"$ref": "#/$defs/money"}}}),
        );
        accepted(json!({"definitions": {"x": {"$anchor": "x", "type": "string"}}, "items": {"$ref": "#x"}}));
        accepted(
            json!({"$id": "https://example.com/s", "properties": {"a": {"$ref": "https://example.com/s#/$defs/a"}}, "$defs": {"a": {}}}),
        );
        accepted(json!({"oneOf": [{"type": "string"}, {"type": "null"}], "not": {"const": "x"}}));
        accepted(
            json!({"if": {"properties": {"k": {"const": 1}}}, "then": {"required": ["a"]}, "else": {"required": ["b"]}}),
        );
        accepted(json!({"properties": {"a~b/c": {"type": "string"}}, "$ref": "#/properties/a~0b~1c"}));
    }

    #[test]
    fn recursion_that_moves_into_the_payload_is_accepted() {
        // A tree, a binary tree, and a linked list: each level applies a bounded set of subschemas.
        accepted(
            json!({"$defs": {"node": {"properties": {"name": {"type": "string"}, "children": {"items": {"$ref": "#/$defs/node"}}}}}, "$ref": "#/$defs/node"}),
        );
        accepted(json!({"properties": {"left": {"$ref": "#"}, "right": {"$ref": "#"}, "value": {}}}));
        accepted(json!({"properties": {"next": {"anyOf": [{"type": "null"}, {"$ref": "#"}]}}}));
    }

    #[test]
    fn cycles_on_one_payload_location_are_refused_naming_the_ref() {
        refused(
            json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}),
            "$ref at #/$defs/a",
        );
        refused(json!({"$ref": "#"}), "$ref at #");
        refused(json!({"allOf": [{"$ref": "#"}]}), "leads back to itself");
        refused(
            json!({"properties": {"x": {"not": {"$ref": "#/properties/x"}}}}),
            "$ref at #/properties/x/not",
        );
        refused(
            json!({"$defs": {"a": {"$anchor": "a", "anyOf": [{"$ref": "#a"}]}}, "$ref": "#a"}),
            "leads back",
        );
        refused(json!({"dependentSchemas": {"k": {"$ref": "#"}}}), "leads back");
    }

    #[test]
    fn references_must_be_local_and_resolve() {
        refused(json!({"$ref": "https://example.com/other.json"}), "is not local");
        refused(json!({"$ref": "other.json#/a"}), "is not local");
        refused(json!({"$ref": "#/$defs/missing"}), "does not lead to a schema");
        refused(json!({"$ref": "#nowhere"}), "names no $anchor");
        refused(
            json!({"$defs": {"a": {"$id": "https://x/y", "$ref": "#"}}}),
            "$id is allowed only at the root",
        );
        refused(json!({"$dynamicRef": "#meta"}), "$dynamicRef is not supported");
    }

    #[test]
    fn work_that_multiplies_per_location_or_per_level_is_refused() {
        // allOf [A, A] nested 12 deep: 4,096 applications on the root location.
        let mut schema = json!({"type": "string"});
        for _ in 0..12 {
            schema = json!({"allOf": [schema.clone(), schema]});
        }
        refused(schema, "more than 2000 subschemas");
        // Two applicators on the same items recursing: doubles with every payload level.
        refused(
            json!({"allOf": [{"items": {"$ref": "#"}}, {"items": {"$ref": "#"}}]}),
            "more than 2000 subschemas",
        );
        // A property named and matched by a pattern recursing through both.
        refused(
            json!({"properties": {"a": {"$ref": "#"}}, "patternProperties": {"^a": {"$ref": "#"}}}),
            "more than 2000",
        );
    }

    #[test]
    fn size_nesting_and_chain_length_are_bounded() {
        let mut deep = json!({});
        for _ in 0..70 {
            deep = json!({"not": deep});
        }
        refused(deep, "nested more than 64 levels");
        let mut defs = serde_json::Map::new();
        for n in 0..40 {
            defs.insert(format!("d{n}"), json!({"$ref": format!("#/$defs/d{}", n + 1)}));
        }
        defs.insert("d40".to_owned(), json!({}));
        refused(json!({"$defs": defs, "$ref": "#/$defs/d0"}), "chains more than 32 subschemas");
        refused(json!({"enum": ["x".repeat(MAX_SCHEMA_BYTES)]}), "bytes; at most");
    }
}
