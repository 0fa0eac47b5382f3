//! A transform's jq program: compiled with the `jaq` crates and run on one input. Compiling is
//! pure and cheap enough to check a program when an endpoint is saved; running one happens only
//! inside the sandbox process ([`super::sandbox`]), where a runaway program cannot take the
//! server with it.

use jaq_core::{
    Ctx, Vars,
    data::JustLut,
    load::{self, Arena, File, Loader},
};
use jaq_json::Val;

/// The longest program accepted, in bytes.
pub const MAX_PROGRAM_BYTES: usize = 16 * 1024;

/// Native filters left out: `env` reads the process environment (the sandbox's is empty, but a
/// program has no business asking). Nothing else in jaq's standard library reads or writes
/// outside the program (`input`/`inputs` need an input stream the sandbox does not give,
/// `debug`/`stderr` write to the sandbox's discarded stderr, `halt` ends the run with an error).
const LEFT_OUT: &[&str] = &["env"];

/// A program that compiled.
pub struct Compiled(jaq_core::Filter<JustLut<Val>>);

/// Why a program did not compile: the message and the character offset in the program where it
/// went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError {
    pub message: String,
    /// Characters (not bytes) from the start of the program.
    pub position: usize,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at character {})", self.message, self.position)
    }
}

/// Where `part` (a slice of `code`, as jaq's errors carry them) starts, in characters.
fn position(code: &str, part: &str) -> usize {
    let start = (part.as_ptr() as usize).saturating_sub(code.as_ptr() as usize).min(code.len());
    code.char_indices().take_while(|(idx, _)| *idx < start).count()
}

/// Compiles `code` with jaq's standard library (less [`LEFT_OUT`]).
pub fn compile(code: &str) -> Result<Compiled, CompileError> {
    if code.len() > MAX_PROGRAM_BYTES {
        return Err(CompileError {
            message: format!("the program is longer than {MAX_PROGRAM_BYTES} bytes"),
            position: 0,
        });
    }
    if code.trim().is_empty() {
        return Err(CompileError { message: "the program is empty".to_owned(), position: 0 });
    }
    let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .filter(|(name, _, _)| !LEFT_OUT.contains(name));
    let arena = Arena::default();
    let modules = Loader::new(defs).load(&arena, File { code, path: () }).map_err(|errors| {
        let first = errors.into_iter().next().map(|(_, error)| error);
        match first {
            Some(load::Error::Lex(errors)) => match errors.into_iter().next() {
                Some((expect, found)) => CompileError {
                    message: format!("expected {}", lex_expectation(&expect)),
                    position: position(code, found),
                },
                None => CompileError { message: "the program does not parse".to_owned(), position: 0 },
            },
            Some(load::Error::Parse(errors)) => match errors.into_iter().next() {
                Some((expect, found)) => CompileError {
                    message: if found.is_empty() {
                        format!("expected {}, found the end of the program", expect.as_str())
                    } else {
                        format!("expected {}, found {found:?}", expect.as_str())
                    },
                    position: position(code, found),
                },
                None => CompileError { message: "the program does not parse".to_owned(), position: 0 },
            },
            Some(load::Error::Io(_)) => {
                CompileError { message: "modules cannot be imported".to_owned(), position: 0 }
            }
            None => CompileError { message: "the program does not parse".to_owned(), position: 0 },
        }
    })?;
    let filter = jaq_core::Compiler::default().with_funs(funs).compile(modules).map_err(|errors| {
        let first = errors.into_iter().flat_map(|(_, errors)| errors).next();
        match first {
            Some((name, undefined)) => CompileError {
                message: match undefined {
                    jaq_core::compile::Undefined::Filter(arity) => {
                        format!("undefined filter {name}/{arity}")
                    }
                    jaq_core::compile::Undefined::Var => format!("undefined variable {name}"),
                    jaq_core::compile::Undefined::Label => format!("undefined label {name}"),
                    jaq_core::compile::Undefined::Mod => format!("undefined module {name}"),
                    _ => format!("undefined {name}"),
                },
                position: position(code, name),
            },
            None => CompileError { message: "the program does not compile".to_owned(), position: 0 },
        }
    })?;
    Ok(Compiled(filter))
}

fn lex_expectation(expect: &load::lex::Expect<&str>) -> &'static str {
    match expect {
        load::lex::Expect::Digit => "a digit",
        load::lex::Expect::Ident => "an identifier",
        load::lex::Expect::Delim("(") => "a closing parenthesis",
        load::lex::Expect::Delim("[") => "a closing bracket",
        load::lex::Expect::Delim("{") => "a closing brace",
        load::lex::Expect::Delim(_) => "a closing quote",
        load::lex::Expect::Escape => "a string escape sequence",
        load::lex::Expect::Unicode => "a 4-digit hexadecimal code point",
        load::lex::Expect::Token => "a token",
        _ => "something else",
    }
}

impl Compiled {
    /// Runs the program on `input` (JSON text): its one output, as JSON text. A program that
    /// fails, yields nothing or yields more than one value is an error with a readable message.
    pub fn run(&self, input: &[u8]) -> Result<String, String> {
        let input =
            jaq_json::read::parse_single(input).map_err(|err| format!("the input is not JSON: {err}"))?;
        let ctx = Ctx::<JustLut<Val>>::new(&self.0.lut, Vars::new([]));
        let mut outputs = self.0.id.run((ctx, input));
        let value = |output: Option<jaq_core::ValX<Val>>| -> Result<Option<Val>, String> {
            match output {
                None => Ok(None),
                Some(Ok(value)) => Ok(Some(value)),
                Some(Err(exception)) => match exception.get_err() {
                    // `error("text")` reads as its text, as jq prints it; other values as JSON.
                    Ok(error) => Err(match error.into_val() {
                        Val::TStr(text) | Val::BStr(text) => {
                            format!("the program failed: {}", String::from_utf8_lossy(&text))
                        }
                        other => format!("the program failed: {other}"),
                    }),
                    Err(_) => Err("the program halted".to_owned()),
                },
            }
        };
        let first = value(outputs.next())?
            .ok_or_else(|| "the program produced no value (return null to skip the delivery)".to_owned())?;
        if value(outputs.next())?.is_some() {
            return Err("the program produced more than one value".to_owned());
        }
        Ok(first.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::compile;

    #[test]
    fn a_program_runs_on_its_input_and_yields_json() {
        let program = compile(
            r#"{payload: {total: (.payload.items | map(.price) | add)}, event_type: "order.totalled"}"#,
        )
        .unwrap();
        let out =
            program.run(br#"{"event_type":"order.created","payload":{"items":[{"price":2},{"price":3.5}]}}"#);
        let out: serde_json::Value = serde_json::from_str(&out.unwrap()).unwrap();
        assert_eq!(out, serde_json::json!({"payload": {"total": 5.5}, "event_type": "order.totalled"}));
    }

    #[test]
    fn syntax_errors_name_what_was_expected_and_where() {
        let err = compile(".payload | {a: }").err().unwrap();
        assert_eq!(err.position, 15, "{err}");
        assert!(err.message.starts_with("expected term"), "{err}");
        let err = compile(".a | (1 + 2").err().unwrap();
        assert!(err.message.contains("parenthesis"), "{err}");
    }

    #[test]
    fn undefined_filters_and_variables_are_named_with_their_position() {
        let err = compile(".payload | frobnicate(1)").err().unwrap();
        assert_eq!(err.message, "undefined filter frobnicate/1");
        assert_eq!(err.position, 11);
        let err = compile("{payload: $secret}").err().unwrap();
        assert_eq!(err.message, "undefined variable $secret");
    }

    #[test]
    fn the_environment_is_not_readable() {
        let err = compile("{payload: env}").err().unwrap();
        assert_eq!(err.message, "undefined filter env/0");
        assert!(compile("{payload: $ENV}").is_err());
    }

    #[test]
    fn empty_too_long_and_import_programs_are_refused() {
        assert!(compile("  ").is_err());
        assert!(compile(&".".repeat(super::MAX_PROGRAM_BYTES + 1)).is_err());
        assert_eq!(compile(r#"import "x" as x; ."#).err().unwrap().message, "modules cannot be imported");
    }

    #[test]
    fn no_value_two_values_and_errors_are_reported_not_panicked() {
        let input = br#"{"payload":{}}"#;
        assert!(compile("empty").unwrap().run(input).unwrap_err().contains("no value"));
        assert!(compile("1, 2").unwrap().run(input).unwrap_err().contains("more than one"));
        assert_eq!(compile(r#"error("nope")"#).unwrap().run(input).unwrap_err(), "the program failed: nope");
        assert_eq!(compile("halt").unwrap().run(input).unwrap_err(), "the program halted");
        assert!(compile(".").unwrap().run(b"{nope").unwrap_err().starts_with("the input is not JSON"));
    }
}
