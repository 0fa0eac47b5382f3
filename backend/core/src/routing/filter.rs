//! Content filters: event patterns in EventBridge's JSON syntax, compiled once when an endpoint is
//! saved and matched at fan-out against `{"event_type", "channels", "payload", "headers"}`.
//!
//! A pattern is an object. A key whose value is an object descends into that field; a key whose
//! value is an array is a leaf, matched when any of the field's values matches any entry. An
//! entry is a literal (string, number, boolean, null: equal by type and value, numbers by value)
//! or one operator object: `prefix`, `suffix` (each optionally `{"equals-ignore-case": …}`),
//! `anything-but` (a value, a list, or `{"prefix" | "suffix" | "wildcard" | "equals-ignore-case":
//! …}`), `numeric` (`[">", 0, "<=", 5]`, `["=", 3]`), `exists`, `wildcard` (`*` any run of
//! characters, `\*` a star), `equals-ignore-case` and `cidr` (IPv4 or IPv6). `"$or": [p, q, …]`
//! at any object level needs one of its patterns to match besides the level's other keys.
//!
//! Arrays in the matched document count element by element: a leaf matches when any element does
//! (nested arrays flatten), and an object pattern over an array of objects matches when one
//! element matches all of it. A missing field matches only `{"exists": false}`; an object is not a
//! value (`exists` and the operators look at leaves).
//!
//! Matching allocates nothing: the fan-out parses each payload once and asks every filter of its
//! application. Cost is linear in pattern × document size; a wildcard is split at its stars and
//! matched left to right (no backtracking).

use std::net::IpAddr;

use serde_json::{Map, Value};

/// Patterns larger than this (as JSON text) are refused.
pub const MAX_PATTERN_BYTES: usize = 8 * 1024;
/// Objects nested deeper than this in a pattern are refused.
pub const MAX_PATTERN_DEPTH: usize = 16;

/// The fields a filter may name at its top level.
pub const DOCUMENT_FIELDS: [&str; 4] = ["event_type", "channels", "payload", "headers"];

/// A compiled content filter.
#[derive(Clone, Debug)]
pub struct Filter {
    root: Object,
}

/// Why a pattern does not compile: the path of the bad part (from the pattern's root) and what
/// is wrong there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternError {
    pub path: Vec<String>,
    pub message: String,
}

impl PatternError {
    /// Where the error is in a request whose `filter` field held the pattern:
    /// `["body", "filter", …path]`.
    pub fn loc(&self) -> Vec<&str> {
        ["body", "filter"].into_iter().chain(self.path.iter().map(String::as_str)).collect()
    }
}

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path.join("."), self.message)
        }
    }
}

/// What a filter is matched against. `headers` are a received webhook's forwarded headers
/// (names lower-case); messages sent through the API have none.
#[derive(Clone, Copy, Debug)]
pub struct Document<'a> {
    pub event_type: &'a str,
    pub channels: &'a [String],
    pub payload: Option<&'a Value>,
    pub headers: &'a [(String, String)],
}

#[derive(Clone, Debug)]
struct Object {
    fields: Vec<(String, Field)>,
    any_of: Vec<Vec<Object>>,
}

#[derive(Clone, Debug)]
enum Field {
    Object(Object),
    Leaf(Vec<Matcher>),
}

#[derive(Clone, Debug)]
enum Matcher {
    Literal(Literal),
    Prefix(Text),
    Suffix(Text),
    Wildcard(Wildcard),
    EqualsIgnoreCase(String),
    Numeric(Range),
    Exists(bool),
    Cidr(Cidr),
    AnythingBut(AnythingBut),
}

#[derive(Clone, Debug, PartialEq)]
enum Literal {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
}

/// A prefix or suffix, compared exactly or ignoring case.
#[derive(Clone, Debug)]
struct Text {
    text: String,
    ignore_case: bool,
}

#[derive(Clone, Debug)]
enum AnythingBut {
    Literals(Vec<Literal>),
    Prefix(String),
    Suffix(String),
    Wildcard(Wildcard),
    EqualsIgnoreCase(Vec<String>),
}

#[derive(Clone, Debug, Default)]
struct Range {
    low: Option<(f64, bool)>,
    high: Option<(f64, bool)>,
}

#[derive(Clone, Debug)]
struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// `*` matches any run of characters; the literal parts between stars, in order.
#[derive(Clone, Debug)]
struct Wildcard {
    parts: Vec<String>,
}

/// One value of the matched document where a leaf pattern looks.
#[derive(Clone, Copy, Debug)]
enum Leaf<'a> {
    Null,
    Bool(bool),
    Number(f64),
    Str(&'a str),
}

impl Filter {
    /// Compiles a pattern; the error names the path of the first bad part.
    pub fn compile(pattern: &Value) -> Result<Filter, PatternError> {
        let size = serde_json::to_string(pattern).map(|s| s.len()).unwrap_or(usize::MAX);
        if size > MAX_PATTERN_BYTES {
            return Err(PatternError {
                path: Vec::new(),
                message: format!("a filter is at most {MAX_PATTERN_BYTES} bytes of JSON ({size} given)"),
            });
        }
        let Value::Object(map) = pattern else {
            return Err(PatternError { path: Vec::new(), message: "a filter is a JSON object".into() });
        };
        let root = compile_root(map, &mut Vec::new())?;
        Ok(Filter { root })
    }

    /// Whether the document matches.
    pub fn matches(&self, doc: &Document<'_>) -> bool {
        root_matches(&self.root, doc, &mut NoTrace)
    }

    /// Whether the document matches, and if not the path of the first part that did not.
    pub fn explain(&self, doc: &Document<'_>) -> Result<(), Vec<String>> {
        let mut trace = Trace::default();
        if root_matches(&self.root, doc, &mut trace) { Ok(()) } else { Err(trace.path()) }
    }
}

// ----- compiling -------------------------------------------------------------------------------

fn error(path: &[String], message: impl Into<String>) -> PatternError {
    PatternError { path: path.to_vec(), message: message.into() }
}

/// The top level: the document's fields, each in the shape it has (`event_type` and `channels`
/// are values, `payload` an object, `headers` one level of names), and `$or` of such levels.
fn compile_root(map: &Map<String, Value>, path: &mut Vec<String>) -> Result<Object, PatternError> {
    let mut root = Object { fields: Vec::new(), any_of: Vec::new() };
    for (key, value) in map {
        path.push(key.clone());
        match (key.as_str(), value) {
            ("$or", Value::Array(alternatives)) if alternatives.len() >= 2 => {
                let mut compiled = Vec::with_capacity(alternatives.len());
                for (idx, alternative) in alternatives.iter().enumerate() {
                    path.push(idx.to_string());
                    match alternative {
                        Value::Object(inner) if !inner.is_empty() => {
                            compiled.push(compile_root(inner, path)?)
                        }
                        _ => {
                            return Err(error(
                                path,
                                "each $or alternative is a pattern object naming at least one field",
                            ));
                        }
                    }
                    path.pop();
                }
                root.any_of.push(compiled);
            }
            ("$or", _) => return Err(error(path, "$or takes an array of at least two patterns")),
            ("event_type" | "channels", Value::Array(entries)) => {
                root.fields.push((key.clone(), Field::Leaf(compile_leaf(entries, path)?)));
            }
            ("event_type" | "channels", _) => {
                return Err(error(path, format!("{key} takes an array of values to match")));
            }
            ("payload", Value::Object(inner)) => {
                root.fields.push((key.clone(), Field::Object(compile_object(inner, path, 1)?)));
            }
            ("payload", _) => {
                return Err(error(path, "payload takes an object pattern over the payload's fields"));
            }
            ("headers", Value::Object(inner)) => {
                let headers = compile_object(inner, path, 1)?;
                if let Some(name) = first_nested(&headers) {
                    path.push(name);
                    return Err(error(
                        path,
                        "a header's pattern is an array of values to match (headers have no fields)",
                    ));
                }
                root.fields.push((key.clone(), Field::Object(headers)));
            }
            ("headers", _) => {
                return Err(error(path, "headers takes an object of header names to arrays of values"));
            }
            _ => {
                return Err(error(
                    path,
                    format!("a filter matches {}; not {key}", DOCUMENT_FIELDS.join(", ")),
                ));
            }
        }
        path.pop();
    }
    Ok(root)
}

/// The first field of a headers pattern (or of its `$or`s) that is an object, not a leaf.
fn first_nested(object: &Object) -> Option<String> {
    object
        .fields
        .iter()
        .find(|(_, field)| matches!(field, Field::Object(_)))
        .map(|(name, _)| name.clone())
        .or_else(|| object.any_of.iter().flatten().find_map(first_nested))
}

fn compile_object(
    map: &Map<String, Value>,
    path: &mut Vec<String>,
    depth: usize,
) -> Result<Object, PatternError> {
    if depth >= MAX_PATTERN_DEPTH {
        return Err(error(path, format!("patterns nest at most {MAX_PATTERN_DEPTH} objects deep")));
    }
    let mut object = Object { fields: Vec::new(), any_of: Vec::new() };
    for (key, value) in map {
        path.push(key.clone());
        if key == "$or" {
            let Value::Array(alternatives) = value else {
                return Err(error(path, "$or takes an array of at least two patterns"));
            };
            if alternatives.len() < 2 {
                return Err(error(path, "$or takes an array of at least two patterns"));
            }
            let mut compiled = Vec::with_capacity(alternatives.len());
            for (idx, alternative) in alternatives.iter().enumerate() {
                path.push(idx.to_string());
                let Value::Object(inner) = alternative else {
                    return Err(error(path, "each $or alternative is a pattern object"));
                };
                if inner.is_empty() {
                    return Err(error(path, "an $or alternative names at least one field"));
                }
                compiled.push(compile_object(inner, path, depth + 1)?);
                path.pop();
            }
            object.any_of.push(compiled);
        } else {
            let field = match value {
                Value::Object(inner) => Field::Object(compile_object(inner, path, depth + 1)?),
                Value::Array(entries) => Field::Leaf(compile_leaf(entries, path)?),
                _ => {
                    return Err(error(
                        path,
                        "a pattern's value is an object (a nested field) or an array of values to match",
                    ));
                }
            };
            object.fields.push((key.clone(), field));
        }
        path.pop();
    }
    Ok(object)
}

fn compile_leaf(entries: &[Value], path: &mut Vec<String>) -> Result<Vec<Matcher>, PatternError> {
    if entries.is_empty() {
        return Err(error(path, "list at least one value to match"));
    }
    let mut matchers = Vec::with_capacity(entries.len());
    for (idx, entry) in entries.iter().enumerate() {
        path.push(idx.to_string());
        matchers.push(match entry {
            Value::Object(operator) => compile_operator(operator, path)?,
            Value::Array(_) => return Err(error(path, "a value to match is not an array")),
            literal => Matcher::Literal(compile_literal(literal, path)?),
        });
        path.pop();
    }
    Ok(matchers)
}

fn compile_literal(value: &Value, path: &[String]) -> Result<Literal, PatternError> {
    Ok(match value {
        Value::Null => Literal::Null,
        Value::Bool(b) => Literal::Bool(*b),
        Value::Number(n) => Literal::Number(number(n, path)?),
        Value::String(s) => Literal::String(s.clone()),
        _ => return Err(error(path, "expected a string, number, boolean or null")),
    })
}

fn number(n: &serde_json::Number, path: &[String]) -> Result<f64, PatternError> {
    n.as_f64().filter(|f| f.is_finite()).ok_or_else(|| error(path, "not a finite number"))
}

fn string<'v>(value: &'v Value, path: &[String], what: &str) -> Result<&'v str, PatternError> {
    value.as_str().ok_or_else(|| error(path, format!("{what} takes a string")))
}

fn compile_operator(operator: &Map<String, Value>, path: &mut Vec<String>) -> Result<Matcher, PatternError> {
    let mut entries = operator.iter();
    let (Some((name, argument)), None) = (entries.next(), entries.next()) else {
        return Err(error(
            path,
            "an operator object has exactly one key (prefix, suffix, anything-but, numeric, exists, wildcard, equals-ignore-case, cidr)",
        ));
    };
    path.push(name.clone());
    let matcher = match name.as_str() {
        "prefix" => Matcher::Prefix(compile_text(argument, path, "prefix")?),
        "suffix" => Matcher::Suffix(compile_text(argument, path, "suffix")?),
        "equals-ignore-case" => {
            Matcher::EqualsIgnoreCase(string(argument, path, "equals-ignore-case")?.to_owned())
        }
        "wildcard" => Matcher::Wildcard(compile_wildcard(string(argument, path, "wildcard")?, path)?),
        "exists" => match argument {
            Value::Bool(b) => Matcher::Exists(*b),
            _ => return Err(error(path, "exists takes true or false")),
        },
        "numeric" => Matcher::Numeric(compile_range(argument, path)?),
        "cidr" => Matcher::Cidr(compile_cidr(string(argument, path, "cidr")?, path)?),
        "anything-but" => Matcher::AnythingBut(compile_anything_but(argument, path)?),
        other => {
            return Err(error(
                path,
                format!(
                    "unknown operator {other} (prefix, suffix, anything-but, numeric, exists, wildcard, equals-ignore-case, cidr)"
                ),
            ));
        }
    };
    path.pop();
    Ok(matcher)
}

fn compile_text(argument: &Value, path: &mut Vec<String>, what: &str) -> Result<Text, PatternError> {
    match argument {
        Value::String(text) => Ok(Text { text: text.clone(), ignore_case: false }),
        Value::Object(inner) if inner.len() == 1 && inner.contains_key("equals-ignore-case") => {
            path.push("equals-ignore-case".into());
            let text = string(&inner["equals-ignore-case"], path, "equals-ignore-case")?.to_owned();
            path.pop();
            Ok(Text { text, ignore_case: true })
        }
        _ => Err(error(path, format!("{what} takes a string or {{\"equals-ignore-case\": \"…\"}}"))),
    }
}

fn compile_wildcard(pattern: &str, path: &[String]) -> Result<Wildcard, PatternError> {
    let mut parts = vec![String::new()];
    let mut chars = pattern.chars().peekable();
    let mut last_was_star = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('*' | '\\')) => {
                    parts.last_mut().expect("one part").push(escaped);
                    last_was_star = false;
                }
                _ => return Err(error(path, "in a wildcard, \\ escapes only * or \\")),
            },
            '*' => {
                if last_was_star {
                    return Err(error(path, "a wildcard may not have two stars in a row"));
                }
                parts.push(String::new());
                last_was_star = true;
            }
            other => {
                parts.last_mut().expect("one part").push(other);
                last_was_star = false;
            }
        }
    }
    Ok(Wildcard { parts })
}

fn compile_range(argument: &Value, path: &[String]) -> Result<Range, PatternError> {
    let shape = "numeric takes [op, number] or [op, number, op, number] with op one of =, <, <=, >, >=";
    let Value::Array(items) = argument else { return Err(error(path, shape)) };
    if items.len() != 2 && items.len() != 4 {
        return Err(error(path, shape));
    }
    let mut range = Range::default();
    for pair in items.chunks(2) {
        let (Some(op), Some(Value::Number(n))) = (pair[0].as_str(), pair.get(1)) else {
            return Err(error(path, shape));
        };
        let n = number(n, path)?;
        let (low, high) = match op {
            "=" if items.len() == 2 => (Some((n, true)), Some((n, true))),
            ">" => (Some((n, false)), None),
            ">=" => (Some((n, true)), None),
            "<" => (None, Some((n, false))),
            "<=" => (None, Some((n, true))),
            _ => return Err(error(path, shape)),
        };
        if (low.is_some() && range.low.is_some()) || (high.is_some() && range.high.is_some()) {
            return Err(error(path, "numeric takes at most one lower and one upper bound"));
        }
        range.low = range.low.or(low);
        range.high = range.high.or(high);
    }
    if let (Some((low, _)), Some((high, _))) = (range.low, range.high)
        && low > high
    {
        return Err(error(path, "numeric: the lower bound is above the upper bound"));
    }
    Ok(range)
}

fn compile_cidr(text: &str, path: &[String]) -> Result<Cidr, PatternError> {
    let bad = || error(path, format!("{text} is not a CIDR block such as 10.0.0.0/24 or 2001:db8::/32"));
    let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
    let network: IpAddr = address.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let bits = if network.is_ipv4() { 32 } else { 128 };
    if prefix > bits {
        return Err(bad());
    }
    Ok(Cidr { network, prefix })
}

fn compile_anything_but(argument: &Value, path: &mut Vec<String>) -> Result<AnythingBut, PatternError> {
    Ok(match argument {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(error(path, "anything-but takes at least one value"));
            }
            let mut literals = Vec::with_capacity(items.len());
            for (idx, item) in items.iter().enumerate() {
                path.push(idx.to_string());
                match item {
                    Value::String(_) | Value::Number(_) => literals.push(compile_literal(item, path)?),
                    _ => return Err(error(path, "anything-but lists strings or numbers")),
                }
                path.pop();
            }
            AnythingBut::Literals(literals)
        }
        Value::String(_) | Value::Number(_) => AnythingBut::Literals(vec![compile_literal(argument, path)?]),
        Value::Object(inner) if inner.len() == 1 => {
            let (name, value) = inner.iter().next().expect("one entry");
            path.push(name.clone());
            let compiled = match name.as_str() {
                "prefix" => AnythingBut::Prefix(string(value, path, "prefix")?.to_owned()),
                "suffix" => AnythingBut::Suffix(string(value, path, "suffix")?.to_owned()),
                "wildcard" => {
                    AnythingBut::Wildcard(compile_wildcard(string(value, path, "wildcard")?, path)?)
                }
                "equals-ignore-case" => AnythingBut::EqualsIgnoreCase(match value {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => {
                        items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect()
                    }
                    _ => return Err(error(path, "equals-ignore-case takes a string or a list of strings")),
                }),
                _ => {
                    return Err(error(
                        path,
                        "anything-but takes prefix, suffix, wildcard or equals-ignore-case",
                    ));
                }
            };
            path.pop();
            compiled
        }
        _ => {
            return Err(error(
                path,
                "anything-but takes a string, a number, a list of them, or {prefix|suffix|wildcard|equals-ignore-case}",
            ));
        }
    })
}

// ----- matching --------------------------------------------------------------------------------

/// Where a failed match records the path it failed at (nothing, in the fan-out).
trait Recorder {
    fn enter(&mut self, segment: &str);
    fn leave(&mut self);
    /// Keeps the current path as the failure's, unless one is kept already.
    fn failed(&mut self);
}

struct NoTrace;

impl Recorder for NoTrace {
    fn enter(&mut self, _: &str) {}
    fn leave(&mut self) {}
    fn failed(&mut self) {}
}

#[derive(Default)]
struct Trace {
    current: Vec<String>,
    failed_at: Option<Vec<String>>,
}

impl Trace {
    fn path(self) -> Vec<String> {
        self.failed_at.unwrap_or_default()
    }
}

impl Recorder for Trace {
    fn enter(&mut self, segment: &str) {
        self.current.push(segment.to_owned());
    }
    fn leave(&mut self) {
        self.current.pop();
    }
    fn failed(&mut self) {
        if self.failed_at.is_none() {
            self.failed_at = Some(self.current.clone());
        }
    }
}

/// A top-level field of the document.
#[derive(Clone, Copy)]
enum Top<'a> {
    Json(Option<&'a Value>),
    Str(&'a str),
    Strs(&'a [String]),
    Headers(&'a [(String, String)]),
}

fn top<'a>(doc: &Document<'a>, key: &str) -> Top<'a> {
    match key {
        "event_type" => Top::Str(doc.event_type),
        "channels" => Top::Strs(doc.channels),
        "payload" => Top::Json(doc.payload),
        _ => Top::Headers(doc.headers),
    }
}

fn root_matches(root: &Object, doc: &Document<'_>, rec: &mut impl Recorder) -> bool {
    for (key, field) in &root.fields {
        rec.enter(key);
        let ok = match (top(doc, key), field) {
            (Top::Json(value), Field::Object(object)) => object_matches(object, value, rec),
            (Top::Str(s), Field::Leaf(matchers)) => {
                leaf_list_matches(matchers, std::iter::once(Leaf::Str(s)), rec)
            }
            (Top::Strs(list), Field::Leaf(matchers)) => {
                leaf_list_matches(matchers, list.iter().map(|s| Leaf::Str(s)), rec)
            }
            (Top::Headers(headers), Field::Object(object)) => headers_match(object, headers, rec),
            // Compiling gives each top-level field its shape.
            _ => unreachable!("compile_root checked the shape of {key}"),
        };
        rec.leave();
        if !ok {
            return false;
        }
    }
    any_of_matches(&root.any_of, rec, |alternative, rec| root_matches(alternative, doc, rec))
}

/// Each `$or` group needs one alternative to match; a group where none does is the failure's
/// path (not the inside of one of its alternatives).
fn any_of_matches(
    groups: &[Vec<Object>],
    rec: &mut impl Recorder,
    mut each: impl FnMut(&Object, &mut NoTrace) -> bool,
) -> bool {
    for group in groups {
        if !group.iter().any(|alternative| each(alternative, &mut NoTrace)) {
            rec.enter("$or");
            rec.failed();
            rec.leave();
            return false;
        }
    }
    true
}

/// Headers are one level: each field of the pattern is a header name (case-insensitive).
fn headers_match(object: &Object, headers: &[(String, String)], rec: &mut impl Recorder) -> bool {
    for (name, field) in &object.fields {
        rec.enter(name);
        let values = headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| Leaf::Str(v));
        let ok = match field {
            Field::Leaf(matchers) => leaf_list_matches(matchers, values, rec),
            Field::Object(_) => {
                rec.failed();
                false
            }
        };
        rec.leave();
        if !ok {
            return false;
        }
    }
    any_of_matches(&object.any_of, rec, |alternative, rec| headers_match(alternative, headers, rec))
}

/// An object pattern against a value that may be absent, an object, an array (any element) or a
/// scalar (which has none of the fields).
fn object_matches(object: &Object, value: Option<&Value>, rec: &mut impl Recorder) -> bool {
    match value {
        Some(Value::Array(items))
            if items.iter().any(|i| matches!(i, Value::Object(_) | Value::Array(_))) =>
        {
            // One element must match the whole pattern; the failure reported is the first one's.
            let mut first = true;
            for item in items.iter().filter(|i| matches!(i, Value::Object(_) | Value::Array(_))) {
                let ok = if first {
                    object_matches(object, Some(item), rec)
                } else {
                    object_matches(object, Some(item), &mut NoTrace)
                };
                first = false;
                if ok {
                    return true;
                }
            }
            false
        }
        Some(Value::Object(map)) => fields_match(object, Some(map), rec),
        _ => fields_match(object, None, rec),
    }
}

fn fields_match(object: &Object, map: Option<&Map<String, Value>>, rec: &mut impl Recorder) -> bool {
    for (key, field) in &object.fields {
        rec.enter(key);
        let child = map.and_then(|m| m.get(key));
        let ok = match field {
            Field::Object(inner) => object_matches(inner, child, rec),
            Field::Leaf(matchers) => leaf_matches(matchers, child, rec),
        };
        rec.leave();
        if !ok {
            return false;
        }
    }
    any_of_matches(&object.any_of, rec, |alternative, rec| fields_match(alternative, map, rec))
}

fn leaf_matches(matchers: &[Matcher], value: Option<&Value>, rec: &mut impl Recorder) -> bool {
    let mut found = false;
    let mut matched = false;
    if let Some(value) = value {
        each_leaf(value, &mut |leaf| {
            found = true;
            if !matched && matchers.iter().any(|m| m.matches(leaf)) {
                matched = true;
            }
        });
    }
    let ok = matched || (!found && matchers.iter().any(|m| matches!(m, Matcher::Exists(false))));
    if !ok {
        rec.failed();
    }
    ok
}

fn leaf_list_matches<'a>(
    matchers: &[Matcher],
    leaves: impl Iterator<Item = Leaf<'a>>,
    rec: &mut impl Recorder,
) -> bool {
    let mut found = false;
    for leaf in leaves {
        found = true;
        if matchers.iter().any(|m| m.matches(leaf)) {
            return true;
        }
    }
    let ok = !found && matchers.iter().any(|m| matches!(m, Matcher::Exists(false)));
    if !ok {
        rec.failed();
    }
    ok
}

/// Calls `f` with every leaf of `value`: itself when a scalar, the elements of an array
/// (flattened), nothing for an object.
fn each_leaf<'a>(value: &'a Value, f: &mut impl FnMut(Leaf<'a>)) {
    match value {
        Value::Null => f(Leaf::Null),
        Value::Bool(b) => f(Leaf::Bool(*b)),
        Value::Number(n) => {
            if let Some(n) = n.as_f64() {
                f(Leaf::Number(n))
            }
        }
        Value::String(s) => f(Leaf::Str(s)),
        Value::Array(items) => items.iter().for_each(|item| each_leaf(item, f)),
        Value::Object(_) => {}
    }
}

impl Matcher {
    fn matches(&self, leaf: Leaf<'_>) -> bool {
        match self {
            Matcher::Literal(literal) => literal.equals(leaf),
            Matcher::Prefix(text) => leaf.text().is_some_and(|s| text.is_prefix_of(s)),
            Matcher::Suffix(text) => leaf.text().is_some_and(|s| text.is_suffix_of(s)),
            Matcher::Wildcard(wildcard) => leaf.text().is_some_and(|s| wildcard.matches(s)),
            Matcher::EqualsIgnoreCase(expected) => leaf.text().is_some_and(|s| eq_ignore_case(s, expected)),
            Matcher::Numeric(range) => matches!(leaf, Leaf::Number(n) if range.contains(n)),
            Matcher::Exists(exists) => *exists,
            Matcher::Cidr(cidr) => {
                leaf.text().and_then(|s| s.parse::<IpAddr>().ok()).is_some_and(|ip| cidr.contains(ip))
            }
            Matcher::AnythingBut(but) => !but.excludes(leaf),
        }
    }
}

impl Leaf<'_> {
    fn text(&self) -> Option<&str> {
        match self {
            Leaf::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl Literal {
    fn equals(&self, leaf: Leaf<'_>) -> bool {
        match (self, leaf) {
            (Literal::Null, Leaf::Null) => true,
            (Literal::Bool(a), Leaf::Bool(b)) => *a == b,
            (Literal::Number(a), Leaf::Number(b)) => *a == b,
            (Literal::String(a), Leaf::Str(b)) => a == b,
            _ => false,
        }
    }
}

impl AnythingBut {
    /// Whether the leaf is one of the excluded values (a non-string is never excluded by a
    /// string rule, so it matches `anything-but` a prefix).
    fn excludes(&self, leaf: Leaf<'_>) -> bool {
        match self {
            AnythingBut::Literals(literals) => literals.iter().any(|l| l.equals(leaf)),
            AnythingBut::Prefix(prefix) => leaf.text().is_some_and(|s| s.starts_with(prefix.as_str())),
            AnythingBut::Suffix(suffix) => leaf.text().is_some_and(|s| s.ends_with(suffix.as_str())),
            AnythingBut::Wildcard(wildcard) => leaf.text().is_some_and(|s| wildcard.matches(s)),
            AnythingBut::EqualsIgnoreCase(values) => {
                leaf.text().is_some_and(|s| values.iter().any(|v| eq_ignore_case(s, v)))
            }
        }
    }
}

impl Text {
    fn is_prefix_of(&self, s: &str) -> bool {
        if self.ignore_case {
            starts_with_ignore_case(s.chars(), self.text.chars())
        } else {
            s.starts_with(self.text.as_str())
        }
    }

    fn is_suffix_of(&self, s: &str) -> bool {
        if self.ignore_case {
            starts_with_ignore_case(s.chars().rev(), self.text.chars().rev())
        } else {
            s.ends_with(self.text.as_str())
        }
    }
}

/// Case-insensitive equality by Unicode lower-case mapping, without allocating.
fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase))
}

fn starts_with_ignore_case(s: impl Iterator<Item = char>, prefix: impl Iterator<Item = char>) -> bool {
    let mut s = s.flat_map(char::to_lowercase);
    prefix.flat_map(char::to_lowercase).all(|p| s.next() == Some(p))
}

impl Range {
    fn contains(&self, n: f64) -> bool {
        let above = match self.low {
            Some((low, inclusive)) => n > low || (inclusive && n == low),
            None => true,
        };
        let below = match self.high {
            Some((high, inclusive)) => n < high || (inclusive && n == high),
            None => true,
        };
        above && below
    }
}

impl Cidr {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl Wildcard {
    /// The first part is a prefix, the last a suffix, the ones between are found left to right
    /// (leftmost is always right for `*`-only globs): linear in the text, no backtracking.
    fn matches(&self, s: &str) -> bool {
        let (first, rest) = self.parts.split_first().expect("at least one part");
        let Some(mut rest_of_s) = s.strip_prefix(first.as_str()) else { return false };
        let Some((last, middle)) = rest.split_last() else { return rest_of_s.is_empty() };
        for part in middle {
            match rest_of_s.find(part.as_str()) {
                Some(at) => rest_of_s = &rest_of_s[at + part.len()..],
                None => return false,
            }
        }
        rest_of_s.ends_with(last.as_str())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn filter(pattern: Value) -> Filter {
        Filter::compile(&pattern).unwrap_or_else(|err| panic!("{pattern}: {err}"))
    }

    /// Matches a pattern over `payload` (event type `order.created`, channel `eu`).
    fn on(pattern: Value, payload: Value) -> bool {
        filter(json!({ "payload": pattern })).matches(&Document {
            event_type: "order.created",
            channels: &["eu".into()],
            payload: Some(&payload),
            headers: &[],
        })
    }

    fn compile_error(pattern: Value) -> PatternError {
        Filter::compile(&pattern).expect_err("refused")
    }

    // The examples below follow the event patterns and events of Amazon EventBridge's
    // "Content filtering" documentation, rewritten under `payload`.

    #[test]
    fn exact_values_match_by_type_and_any_listed_value() {
        let event = json!({"state": "running", "count": 5, "on": true, "gone": null});
        assert!(on(json!({"state": ["running"]}), event.clone()));
        assert!(on(json!({"state": ["pending", "running"]}), event.clone()));
        assert!(!on(json!({"state": ["stopped"]}), event.clone()));
        assert!(on(json!({"count": [5]}), event.clone()));
        assert!(on(json!({"count": [5.0]}), event.clone()));
        assert!(!on(json!({"count": ["5"]}), event.clone()), "a string never equals a number");
        assert!(on(json!({"on": [true]}), event.clone()));
        assert!(on(json!({"gone": [null]}), event.clone()));
        assert!(!on(json!({"missing": [null]}), event.clone()), "null matches a null value, not absence");
        assert!(on(json!({}), event), "an empty pattern matches everything");
    }

    #[test]
    fn arrays_in_the_event_match_when_any_element_does() {
        let event = json!({"resources": ["arn:a", "arn:b"], "nested": [["x"], ["y", "z"]]});
        assert!(on(json!({"resources": ["arn:b"]}), event.clone()));
        assert!(!on(json!({"resources": ["arn:c"]}), event.clone()));
        assert!(on(json!({"nested": ["z"]}), event.clone()), "nested arrays flatten");
        assert!(
            on(json!({"resources": [{"anything-but": "arn:a"}]}), event.clone()),
            "arn:b is anything but arn:a"
        );
        assert!(!on(json!({"resources": [{"anything-but": ["arn:a", "arn:b"]}]}), event));
    }

    #[test]
    fn nested_objects_and_arrays_of_objects_match_within_one_element() {
        let event = json!({"detail": {"items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 9}]}});
        assert!(on(
            json!({"detail": {"items": {"sku": ["b"], "qty": [{"numeric": [">", 5]}]}}}),
            event.clone()
        ));
        assert!(
            !on(json!({"detail": {"items": {"sku": ["a"], "qty": [{"numeric": [">", 5]}]}}}), event.clone()),
            "sku a and qty > 5 are in different elements"
        );
        assert!(!on(json!({"detail": {"missing": {"x": ["y"]}}}), event.clone()));
        assert!(!on(json!({"detail": ["x"]}), event), "an object is not a value");
    }

    #[test]
    fn prefix_suffix_and_ignore_case() {
        let event = json!({"time": "2017-10-02T12:00:00Z", "file": "photo.PNG", "region": "EU-West-1"});
        assert!(on(json!({"time": [{"prefix": "2017-10-02"}]}), event.clone()));
        assert!(!on(json!({"time": [{"prefix": "2017-10-03"}]}), event.clone()));
        assert!(on(json!({"file": [{"suffix": ".PNG"}]}), event.clone()));
        assert!(!on(json!({"file": [{"suffix": ".png"}]}), event.clone()));
        assert!(on(json!({"file": [{"suffix": {"equals-ignore-case": ".png"}}]}), event.clone()));
        assert!(on(json!({"region": [{"prefix": {"equals-ignore-case": "eu-"}}]}), event.clone()));
        assert!(on(json!({"region": [{"equals-ignore-case": "eu-west-1"}]}), event.clone()));
        assert!(!on(json!({"region": [{"equals-ignore-case": "eu-west-2"}]}), event.clone()));
        assert!(
            !on(json!({"name": [{"equals-ignore-case": "straße"}]}), json!({"name": "STRASSE"})),
            "lower-case mapping, not full case folding"
        );
        assert!(on(json!({"name": [{"equals-ignore-case": "ÉTÉ"}]}), json!({"name": "été"})));
        assert!(
            !on(json!({"count": [{"prefix": "1"}]}), json!({"count": 12})),
            "prefix looks at strings only"
        );
    }

    #[test]
    fn anything_but_values_lists_and_string_rules() {
        let event = json!({"state": "running", "code": 200, "zone": "eu-west-1a", "file": "a.txt"});
        assert!(on(json!({"state": [{"anything-but": "initializing"}]}), event.clone()));
        assert!(!on(json!({"state": [{"anything-but": "running"}]}), event.clone()));
        assert!(!on(json!({"state": [{"anything-but": ["stopped", "running"]}]}), event.clone()));
        assert!(on(json!({"code": [{"anything-but": [400, 500]}]}), event.clone()));
        assert!(!on(json!({"code": [{"anything-but": 200}]}), event.clone()));
        assert!(!on(json!({"zone": [{"anything-but": {"prefix": "eu-"}}]}), event.clone()));
        assert!(on(json!({"zone": [{"anything-but": {"prefix": "us-"}}]}), event.clone()));
        assert!(!on(json!({"file": [{"anything-but": {"suffix": ".txt"}}]}), event.clone()));
        assert!(!on(json!({"file": [{"anything-but": {"wildcard": "*.t*"}}]}), event.clone()));
        assert!(!on(
            json!({"state": [{"anything-but": {"equals-ignore-case": ["RUNNING"]}}]}),
            event.clone()
        ));
        assert!(on(json!({"state": [{"anything-but": {"equals-ignore-case": "STOPPED"}}]}), event.clone()));
        assert!(!on(json!({"missing": [{"anything-but": "x"}]}), event), "anything-but needs the field");
    }

    #[test]
    fn numeric_ranges() {
        let event = json!({"price": 100, "ratio": 0.5, "text": "100"});
        assert!(on(json!({"price": [{"numeric": [">", 0, "<=", 100]}]}), event.clone()));
        assert!(!on(json!({"price": [{"numeric": [">", 0, "<", 100]}]}), event.clone()));
        assert!(on(json!({"price": [{"numeric": ["=", 100]}]}), event.clone()));
        assert!(on(json!({"price": [{"numeric": [">=", 100]}]}), event.clone()));
        assert!(on(json!({"ratio": [{"numeric": ["<", 1]}]}), event.clone()));
        assert!(!on(json!({"text": [{"numeric": ["=", 100]}]}), event), "a numeric string is not a number");
    }

    #[test]
    fn exists_looks_at_leaves() {
        let event = json!({"present": "x", "null": null, "empty": [], "object": {"a": 1}});
        assert!(on(json!({"present": [{"exists": true}]}), event.clone()));
        assert!(!on(json!({"present": [{"exists": false}]}), event.clone()));
        assert!(on(json!({"missing": [{"exists": false}]}), event.clone()));
        assert!(!on(json!({"missing": [{"exists": true}]}), event.clone()));
        assert!(on(json!({"null": [{"exists": true}]}), event.clone()));
        assert!(on(json!({"empty": [{"exists": false}]}), event.clone()), "an empty array has no values");
        assert!(!on(json!({"object": [{"exists": true}]}), event.clone()), "exists works on leaf nodes");
        assert!(on(json!({"object": {"a": [{"exists": true}]}}), event.clone()));
        assert!(on(json!({"gone": {"deeper": [{"exists": false}]}}), event));
    }

    #[test]
    fn wildcards() {
        let event = json!({"key": "dir/sub/file.png", "star": "a*b"});
        assert!(on(json!({"key": [{"wildcard": "dir/*.png"}]}), event.clone()));
        assert!(on(json!({"key": [{"wildcard": "*/sub/*"}]}), event.clone()));
        assert!(on(json!({"key": [{"wildcard": "*"}]}), event.clone()));
        assert!(!on(json!({"key": [{"wildcard": "dir/*.jpg"}]}), event.clone()));
        assert!(!on(json!({"key": [{"wildcard": "sub/*"}]}), event.clone()));
        assert!(on(json!({"star": [{"wildcard": "a\\*b"}]}), event.clone()));
        assert!(!on(json!({"star": [{"wildcard": "a\\*c"}]}), event.clone()));
        assert!(on(json!({"key": [{"wildcard": "d*r*b*f*e.png"}]}), event.clone()));
        assert!(!on(json!({"key": [{"wildcard": "d*png*png"}]}), event));
    }

    #[test]
    fn cidr_blocks() {
        let event = json!({"ip": "10.0.0.255", "v6": "2001:db8::1", "bad": "not an ip"});
        assert!(on(json!({"ip": [{"cidr": "10.0.0.0/24"}]}), event.clone()));
        assert!(!on(json!({"ip": [{"cidr": "10.0.1.0/24"}]}), event.clone()));
        assert!(on(json!({"ip": [{"cidr": "0.0.0.0/0"}]}), event.clone()));
        assert!(on(json!({"v6": [{"cidr": "2001:db8::/32"}]}), event.clone()));
        assert!(!on(json!({"v6": [{"cidr": "10.0.0.0/8"}]}), event.clone()));
        assert!(!on(json!({"bad": [{"cidr": "0.0.0.0/0"}]}), event));
    }

    #[test]
    fn or_at_any_level_with_the_other_keys() {
        let pattern =
            json!({"kind": ["order"], "$or": [{"total": [{"numeric": [">", 100]}]}, {"vip": [true]}]});
        assert!(on(pattern.clone(), json!({"kind": "order", "total": 500})));
        assert!(on(pattern.clone(), json!({"kind": "order", "total": 5, "vip": true})));
        assert!(!on(pattern.clone(), json!({"kind": "order", "total": 5})));
        assert!(!on(pattern, json!({"kind": "refund", "total": 500})));
        let top = filter(json!({"$or": [{"event_type": [{"prefix": "invoice."}]}, {"channels": ["eu"]}]}));
        let doc = |event_type, channels: &'static [String]| Document {
            event_type,
            channels,
            payload: None,
            headers: &[],
        };
        assert!(top.matches(&doc("invoice.paid", &[])));
        assert!(!top.matches(&doc("order.created", &[])));
    }

    #[test]
    fn event_type_channels_and_headers_are_fields_of_the_document() {
        let channels = ["eu".to_owned(), "vip".to_owned()];
        let headers = [("x-github-event".to_owned(), "push".to_owned())];
        let payload = json!({"a": 1});
        let doc = Document {
            event_type: "invoice.paid",
            channels: &channels,
            payload: Some(&payload),
            headers: &headers,
        };
        assert!(filter(json!({"event_type": [{"prefix": "invoice."}], "channels": ["vip"]})).matches(&doc));
        assert!(!filter(json!({"channels": ["us"]})).matches(&doc));
        assert!(filter(json!({"headers": {"X-GitHub-Event": ["push"]}})).matches(&doc));
        assert!(!filter(json!({"headers": {"x-github-event": ["issues"]}})).matches(&doc));
        assert!(filter(json!({"headers": {"x-missing": [{"exists": false}]}})).matches(&doc));
    }

    #[test]
    fn explain_names_the_first_path_that_did_not_match() {
        let f = filter(
            json!({"event_type": ["order.created"], "payload": {"detail": {"total": [{"numeric": [">", 10]}]}}}),
        );
        let payload = json!({"detail": {"total": 3}});
        let doc =
            Document { event_type: "order.created", channels: &[], payload: Some(&payload), headers: &[] };
        assert_eq!(f.explain(&doc), Err(vec!["payload".to_owned(), "detail".to_owned(), "total".to_owned()]));
        let big = json!({"detail": {"total": 30}});
        assert_eq!(f.explain(&Document { payload: Some(&big), ..doc }), Ok(()));
        let or = filter(json!({"payload": {"$or": [{"a": [1]}, {"b": [2]}]}}));
        assert_eq!(or.explain(&doc), Err(vec!["payload".to_owned(), "$or".to_owned()]));
    }

    #[test]
    fn bad_patterns_name_their_path() {
        let cases = [
            (json!([]), vec![], "a filter is a JSON object"),
            (json!({"detail": {}}), vec!["detail"], "a filter matches event_type"),
            (json!({"payload": {"a": "x"}}), vec!["payload", "a"], "object (a nested field) or an array"),
            (json!({"payload": {"a": []}}), vec!["payload", "a"], "at least one value"),
            (
                json!({"payload": {"a": [{"prefix": 1}]}}),
                vec!["payload", "a", "0", "prefix"],
                "takes a string",
            ),
            (json!({"payload": {"a": [{"nope": 1}]}}), vec!["payload", "a", "0", "nope"], "unknown operator"),
            (
                json!({"payload": {"a": [{"prefix": "x", "suffix": "y"}]}}),
                vec!["payload", "a", "0"],
                "exactly one key",
            ),
            (
                json!({"payload": {"a": [{"numeric": [">", 5, ">", 6]}]}}),
                vec!["payload", "a", "0", "numeric"],
                "one lower",
            ),
            (
                json!({"payload": {"a": [{"numeric": [">", 6, "<", 5]}]}}),
                vec!["payload", "a", "0", "numeric"],
                "above",
            ),
            (
                json!({"payload": {"a": [{"numeric": ["~", 5]}]}}),
                vec!["payload", "a", "0", "numeric"],
                "op one of",
            ),
            (
                json!({"payload": {"a": [{"wildcard": "a**b"}]}}),
                vec!["payload", "a", "0", "wildcard"],
                "two stars",
            ),
            (json!({"payload": {"a": [{"cidr": "10.0.0.0/33"}]}}), vec!["payload", "a", "0", "cidr"], "CIDR"),
            (
                json!({"payload": {"a": [{"exists": "yes"}]}}),
                vec!["payload", "a", "0", "exists"],
                "true or false",
            ),
            (
                json!({"payload": {"a": [{"anything-but": []}]}}),
                vec!["payload", "a", "0", "anything-but"],
                "at least one",
            ),
            (json!({"payload": {"$or": [{"a": [1]}]}}), vec!["payload", "$or"], "at least two"),
            (json!({"$or": [{"a": [1]}, {"payload": {}}]}), vec!["$or", "0", "a"], "a filter matches"),
            (
                json!({"$or": [{"$or": [{"x": [1]}, {"event_type": ["a"]}]}, {"channels": ["b"]}]}),
                vec!["$or", "0", "$or", "0", "x"],
                "a filter matches",
            ),
            (json!({"event_type": {"a": ["b"]}}), vec!["event_type"], "takes an array"),
            (json!({"payload": ["x"]}), vec!["payload"], "object pattern"),
            (json!({"headers": {"x": {"y": ["z"]}}}), vec!["headers", "x"], "headers have no fields"),
        ];
        for (pattern, path, message) in cases {
            let err = compile_error(pattern.clone());
            assert_eq!(err.path, path, "{pattern}: {err}");
            assert!(err.message.contains(message), "{pattern}: {err}");
        }
        let mut deep = json!(["x"]);
        for _ in 0..20 {
            deep = json!({ "a": deep });
        }
        assert!(compile_error(json!({ "payload": deep })).message.contains("nest at most"));
        let long = json!({"payload": {"a": ["x".repeat(MAX_PATTERN_BYTES)]}});
        assert!(compile_error(long).message.contains("at most"));
    }

    #[test]
    fn a_hostile_wildcard_against_a_long_text_is_answered_within_seconds() {
        let pattern = format!("{}b", "a*".repeat(100));
        let f = filter(json!({"payload": {"s": [{"wildcard": pattern}]}}));
        let text = "a".repeat(200_000);
        let payload = json!({ "s": text });
        let started = std::time::Instant::now();
        assert!(!f.matches(&Document {
            event_type: "x",
            channels: &[],
            payload: Some(&payload),
            headers: &[]
        }));
        // A backtracking matcher takes minutes here; this one reads the text ≈ 100 times.
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    }
}
