//! SQLite's binary JSON (JSONB, <https://sqlite.org/jsonb.html>) written straight from `serde`.
//!
//! The batch statements ([`crate::store::bulk`]) hand SQLite their rows as one JSON array per
//! statement. As JSON text, every string of every row was escaped by `serde_json`, and SQLite
//! then parsed the whole text back into JSONB (copying it first to add a terminator) before
//! `jsonb_each` could walk it: on the SQLite writer's thread, the serial section of the hot path.
//! Given a BLOB that is JSONB, `jsonb_each` walks it as it is. Strings go in as `TEXTRAW` (the
//! UTF-8 bytes, no escaping: SQLite escapes when it renders text), numbers as their decimal text
//! (`INT`, `FLOAT`), containers with a four-byte size patched in when they close (SQLite accepts
//! a size field wider than needed).
//!
//! PostgreSQL takes JSON text: [`to_json_text`] renders the same bytes as JSON.

use std::io::Write as _;

use serde::ser::{self, Serialize};

const NULL: u8 = 0;
const TRUE: u8 = 1;
const FALSE: u8 = 2;
const INT: u8 = 3;
const FLOAT: u8 = 5;
const TEXT: u8 = 7;
const TEXTRAW: u8 = 10;
const ARRAY: u8 = 11;
const OBJECT: u8 = 12;

/// Why a value could not be written (a map key that is not a string or an integer).
#[derive(Debug)]
pub(crate) struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// Appends an element header: the type in the low four bits, the payload size in the high four
/// (0–11) or in the 1, 2, 4 or 8 bytes that follow.
fn header(buf: &mut Vec<u8>, kind: u8, len: usize) {
    if len <= 11 {
        buf.push(((len as u8) << 4) | kind);
    } else if let Ok(len) = u8::try_from(len) {
        buf.extend_from_slice(&[0xc0 | kind, len]);
    } else if let Ok(len) = u16::try_from(len) {
        buf.push(0xd0 | kind);
        buf.extend_from_slice(&len.to_be_bytes());
    } else if let Ok(len) = u32::try_from(len) {
        buf.push(0xe0 | kind);
        buf.extend_from_slice(&len.to_be_bytes());
    } else {
        buf.push(0xf0 | kind);
        buf.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

fn scalar(buf: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    header(buf, kind, payload.len());
    buf.extend_from_slice(payload);
}

/// Opens a container; [`close`] writes its size once its elements are in.
pub(crate) fn open(buf: &mut Vec<u8>, kind_is_object: bool) -> usize {
    let at = buf.len();
    buf.extend_from_slice(&[0xe0 | if kind_is_object { OBJECT } else { ARRAY }, 0, 0, 0, 0]);
    at
}

pub(crate) fn close(buf: &mut [u8], at: usize) {
    let len = u32::try_from(buf.len() - at - 5).expect("a JSONB container under 4 GiB");
    buf[at + 1..at + 5].copy_from_slice(&len.to_be_bytes());
}

/// Appends `value` to `buf` as one JSONB element.
pub(crate) fn write<T: Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    value.serialize(&mut Encoder { buf })
}

/// The JSONB of one value, as a whole blob.
#[cfg(test)]
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    write(&mut buf, value)?;
    Ok(buf)
}

struct Encoder<'b> {
    buf: &'b mut Vec<u8>,
}

impl Encoder<'_> {
    /// A number's decimal text, written in place after a one-byte header (moved behind a wider
    /// one in the rare case of 12 or more characters).
    fn number(&mut self, kind: u8, text: std::fmt::Arguments<'_>) {
        let at = self.buf.len();
        self.buf.push(0);
        self.buf.write_fmt(text).expect("writing to a Vec");
        let len = self.buf.len() - at - 1;
        if len <= 11 {
            self.buf[at] = ((len as u8) << 4) | kind;
        } else {
            let digits = self.buf.split_off(at + 1);
            self.buf.truncate(at);
            scalar(self.buf, kind, &digits);
        }
    }

    /// A float as Rust's shortest round-trip text (`{:?}` always has a `.` or an exponent, as
    /// JSONB's `FLOAT` must); NaN and infinities as `null`, as serde_json writes them.
    fn float(&mut self, finite: bool, text: std::fmt::Arguments<'_>) {
        if finite {
            self.number(FLOAT, text);
        } else {
            self.buf.push(NULL);
        }
    }
}

/// A container being filled: its header's position, and for a variant the outer object's.
struct Compound<'e, 'b> {
    encoder: &'e mut Encoder<'b>,
    at: usize,
    outer: Option<usize>,
}

impl Compound<'_, '_> {
    fn end(self) {
        close(self.encoder.buf, self.at);
        if let Some(outer) = self.outer {
            close(self.encoder.buf, outer);
        }
    }
}

impl<'e, 'b> Encoder<'b> {
    /// Opens the object `{"variant": …}` an enum variant's content goes in (as serde_json
    /// writes variants); returns its position for [`close`].
    fn open_variant(&mut self, variant: &str) -> usize {
        let outer = open(self.buf, true);
        scalar(self.buf, TEXTRAW, variant.as_bytes());
        outer
    }

    fn container(&'e mut self, object: bool, variant: Option<&str>) -> Compound<'e, 'b> {
        let outer = variant.map(|name| self.open_variant(name));
        let at = open(self.buf, object);
        Compound { encoder: self, at, outer }
    }
}

/// Integers of every width: their decimal text, as `INT`.
macro_rules! integers {
    ($($method:ident: $int:ty),*) => {$(
        fn $method(self, v: $int) -> Result<(), Error> {
            self.number(INT, format_args!("{v}"));
            Ok(())
        }
    )*};
}

impl<'e, 'b> ser::Serializer for &'e mut Encoder<'b> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'e, 'b>;
    type SerializeTuple = Compound<'e, 'b>;
    type SerializeTupleStruct = Compound<'e, 'b>;
    type SerializeTupleVariant = Compound<'e, 'b>;
    type SerializeMap = Compound<'e, 'b>;
    type SerializeStruct = Compound<'e, 'b>;
    type SerializeStructVariant = Compound<'e, 'b>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.buf.push(if v { TRUE } else { FALSE });
        Ok(())
    }

    integers!(
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_i128: i128,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_u128: u128
    );

    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        // The f32's own shortest text, not the f64 it widens to (as serde_json does).
        self.float(v.is_finite(), format_args!("{v:?}"));
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.float(v.is_finite(), format_args!("{v:?}"));
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        scalar(self.buf, TEXTRAW, v.as_bytes());
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        // As serde_json does: an array of numbers.
        let at = open(self.buf, false);
        for byte in v {
            self.number(INT, format_args!("{byte}"));
        }
        close(self.buf, at);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.buf.push(NULL);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        self.buf.push(NULL);
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        let at = self.open_variant(variant);
        value.serialize(&mut *self)?;
        close(self.buf, at);
        Ok(())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'e, 'b>, Error> {
        Ok(self.container(false, None))
    }

    fn serialize_tuple(self, _len: usize) -> Result<Compound<'e, 'b>, Error> {
        Ok(self.container(false, None))
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'e, 'b>, Error> {
        Ok(self.container(false, None))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'e, 'b>, Error> {
        Ok(self.container(false, Some(variant)))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'e, 'b>, Error> {
        Ok(self.container(true, None))
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'e, 'b>, Error> {
        Ok(self.container(true, None))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'e, 'b>, Error> {
        Ok(self.container(true, Some(variant)))
    }
}

impl Compound<'_, '_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.encoder)
    }

    /// An object's label: a string, or an integer written as its text (as serde_json does).
    fn key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        let at = self.encoder.buf.len();
        key.serialize(&mut *self.encoder)?;
        let head = self.encoder.buf.get_mut(at).expect("a key wrote its header");
        match *head & 0x0f {
            TEXTRAW => Ok(()),
            INT => {
                // The same digits, as text.
                *head = (*head & 0xf0) | TEXTRAW;
                Ok(())
            }
            _ => Err(Error("a JSON object key must be a string or an integer".to_owned())),
        }
    }
}

/// The sequence-like compounds: each element is written as it comes.
macro_rules! elements {
    ($($kind:ident :: $method:ident),*) => {$(
        impl ser::$kind for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.element(value)
            }

            fn end(self) -> Result<(), Error> {
                Compound::end(self);
                Ok(())
            }
        }
    )*};
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// The struct-like compounds: each field is its name, then its value.
macro_rules! fields {
    ($($kind:ident),*) => {$(
        impl ser::$kind for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;

            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
                scalar(self.encoder.buf, TEXTRAW, key.as_bytes());
                self.element(value)
            }

            fn end(self) -> Result<(), Error> {
                Compound::end(self);
                Ok(())
            }
        }
    )*};
}

fields!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key(key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        Compound::end(self);
        Ok(())
    }
}

/// Renders JSONB written by this module as JSON text (for PostgreSQL, which takes text).
/// Panics on bytes this module does not write: they never come from anywhere else.
pub(crate) fn to_json_text(blob: &[u8]) -> String {
    let mut out = String::with_capacity(blob.len() + blob.len() / 8);
    let end = render(blob, 0, &mut out);
    assert_eq!(end, blob.len(), "one JSONB element");
    out
}

/// The element at `i`: its type, where its payload starts and ends.
fn element(blob: &[u8], i: usize) -> (u8, usize, usize) {
    let head = blob[i];
    let (size, n) = match head >> 4 {
        small @ 0..=11 => (usize::from(small), 1),
        12 => (usize::from(blob[i + 1]), 2),
        13 => (usize::from(u16::from_be_bytes([blob[i + 1], blob[i + 2]])), 3),
        14 => (u32::from_be_bytes(blob[i + 1..i + 5].try_into().expect("4 bytes")) as usize, 5),
        _ => (u64::from_be_bytes(blob[i + 1..i + 9].try_into().expect("8 bytes")) as usize, 9),
    };
    (head & 0x0f, i + n, i + n + size)
}

/// Appends the element at `i` to `out`; returns where the next element starts.
fn render(blob: &[u8], i: usize, out: &mut String) -> usize {
    let (kind, start, end) = element(blob, i);
    let payload = &blob[start..end];
    match kind {
        NULL => out.push_str("null"),
        TRUE => out.push_str("true"),
        FALSE => out.push_str("false"),
        INT | FLOAT => out.push_str(std::str::from_utf8(payload).expect("decimal digits")),
        TEXT | TEXTRAW => quote(std::str::from_utf8(payload).expect("strings are UTF-8"), out),
        ARRAY | OBJECT => {
            let (open, close) = if kind == ARRAY { ('[', ']') } else { ('{', '}') };
            out.push(open);
            let mut at = start;
            let mut n = 0;
            while at < end {
                if n > 0 {
                    out.push(if kind == OBJECT && n % 2 == 1 { ':' } else { ',' });
                }
                at = render(blob, at, out);
                n += 1;
            }
            out.push(close);
        }
        other => panic!("JSONB element type {other} is not written by this module"),
    }
    end
}

/// A JSON string literal, escaped as serde_json escapes it.
fn quote(text: &str, out: &mut String) {
    out.push('"');
    let mut from = 0;
    for (i, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[from..i]);
        if escape.is_empty() {
            out.push_str(&format!("\\u{byte:04x}"));
        } else {
            out.push_str(escape);
        }
        from = i + 1;
    }
    out.push_str(&text[from..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Statement, Value};
    use serde_json::json;

    use super::*;

    /// Values of every shape the encoder writes, with the edge cases of each.
    fn samples() -> Vec<serde_json::Value> {
        vec![
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-7),
            json!(12_345_678_901_i64),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(1.5),
            json!(-0.000_001_25),
            json!(1e300),
            json!(""),
            json!("plain"),
            json!("it's \"quoted\" \\ back/slash ünïcode 🦀"),
            json!("line\nbreak\ttab\r\u{1}\u{1f}\u{8}\u{c}"),
            json!("x".repeat(300)),
            json!("y".repeat(70_000)),
            json!([]),
            json!({}),
            json!([1, "two", null, [3, [4]], {"five": 5}]),
            json!({"a": {"b": {"c": [true, false]}}, "": "empty key", "k\"ey": "v"}),
            json!((0..300).map(|i| json!({"id": format!("row_{i}"), "n": i})).collect::<Vec<_>>()),
        ]
    }

    fn has_float(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::Number(n) => n.is_f64(),
            serde_json::Value::Array(items) => items.iter().any(has_float),
            serde_json::Value::Object(map) => map.values().any(has_float),
            _ => false,
        }
    }

    #[test]
    fn json_text_of_the_jsonb_is_what_serde_json_writes() {
        for value in samples() {
            let text = to_json_text(&to_vec(&value).unwrap());
            // Floats may be spelled differently (`1e300` or `1.0e300`): compare what they say.
            assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), value, "{text}");
            if !has_float(&value) {
                assert_eq!(text, serde_json::to_string(&value).unwrap());
            }
        }
    }

    #[test]
    fn rust_values_encode_as_serde_json_would() {
        #[derive(serde::Serialize)]
        enum Shape {
            Unit,
            New(u8),
            Tuple(u8, &'static str),
            Struct { x: f32 },
        }
        #[derive(serde::Serialize)]
        struct Row<'a> {
            id: &'a str,
            missing: Option<u16>,
            present: Option<u16>,
            shapes: Vec<Shape>,
            numbered: std::collections::BTreeMap<u32, char>,
            nan: f64,
            pair: (i8, bool),
        }
        let row = Row {
            id: "r",
            missing: None,
            present: Some(65_535),
            shapes: vec![Shape::Unit, Shape::New(1), Shape::Tuple(2, "t"), Shape::Struct { x: 0.1 }],
            numbered: [(10, 'é'), (2, 'b')].into_iter().collect(),
            nan: f64::NAN,
            pair: (-1, true),
        };
        let text = to_json_text(&to_vec(&row).unwrap());
        let parsed = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
        assert_eq!(parsed(&text), parsed(&serde_json::to_string(&row).unwrap()), "{text}");
        assert!(to_vec(&std::collections::BTreeMap::from([(true, 1)])).is_err(), "a bool key");
    }

    /// SQLite takes the blob as JSONB (not as text, not as malformed), renders it as the same JSON,
    /// and `->>` reads its fields with their types. (PostgreSQL takes [`to_json_text`]'s text.)
    #[tokio::test]
    async fn sqlite_reads_the_jsonb_as_the_json_it_stands_for() {
        let (_dir, _, db) = crate::store::db::migrated_for_test(hookline_e2e::Backend::Sqlite).await;
        for value in samples() {
            let blob = to_vec(&value).unwrap();
            let row = db
                .conn
                .query_one_raw(Statement::from_sql_and_values(
                    db.backend(),
                    "SELECT json(?1) AS text, json_valid(?1, 8) AS valid",
                    [Value::Bytes(Some(blob))],
                ))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(row.try_get::<i32>("", "valid").unwrap(), 1, "strictly valid JSONB: {value}");
            let text: String = row.try_get("", "text").unwrap();
            assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), value);
        }
        let row = json!([{"s": "a\"b", "i": -3, "f": 2.5, "n": null, "t": true, "o": {"k": ["v"]}}]);
        let fields = db
            .conn
            .query_one_raw(Statement::from_sql_and_values(
                db.backend(),
                "SELECT value ->> 's' AS s, typeof(value ->> 'i') AS ti, value ->> 'i' AS i, \
                 typeof(value ->> 'f') AS tf, value ->> 'n' IS NULL AS n, value ->> 't' AS t, \
                 value ->> 'o' AS o FROM jsonb_each(?)",
                [Value::Bytes(Some(to_vec(&row).unwrap()))],
            ))
            .await
            .unwrap()
            .unwrap();
        let get = |c: &str| fields.try_get::<String>("", c).unwrap();
        let int = |c: &str| fields.try_get::<i64>("", c).unwrap();
        assert_eq!(
            (get("s"), get("ti"), int("i"), get("tf")),
            ("a\"b".to_owned(), "integer".to_owned(), -3, "real".to_owned())
        );
        assert_eq!((int("n"), int("t"), get("o")), (1, 1, r#"{"k":["v"]}"#.to_owned()));
    }
}
