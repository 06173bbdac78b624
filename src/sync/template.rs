//! `target.template`: Secret keys rendered from the fetched values with minijinja.
//!
//! Templates are written by whoever may create a PasswordSafeSecret, and their errors end up in status and
//! events, which more people can read than the Secret. So:
//! - errors never carry a value: a runtime error keeps only minijinja's error kind and line, because its
//!   detail text can quote values (`unable to calculate <lhs> * <rhs>` after an overflow). Exceptions are
//!   details this file writes itself and an unknown filter, test or function whose name is in the template
//!   text (a name computed from a value, as in `map(password)`, is not);
//! - every render has a fuel budget and an output cap, so a template cannot spin or fill memory by looping.
//!
//! Undefined values are errors (strict mode), so a typo in a key name fails the sync instead of writing an
//! empty password. Auto-escaping is off: these are not HTML documents. Output is exactly what the template
//! produces, trailing newline included (a YAML `|` block adds one; `|-` does not).
//!
//! Not bounded: the size of a single value built inside a render. Fuel counts instructions, and a few
//! `{% set s = s ~ s %}` double a string each; minijinja has no memory limit to set.

use std::collections::BTreeMap;
use std::fmt;
use std::io;

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use zeroize::Zeroizing;

use super::SecretData;
use super::keys::is_valid_key;
use crate::api::SecretTemplate;
use crate::passwordsafe::SecretBytes;

/// Instructions one template may run. Far above what a connection string or config file needs.
pub const FUEL: u64 = 50_000;
/// Largest rendered value (Kubernetes caps a whole Secret at 1 MiB).
pub const MAX_RENDERED_LEN: usize = 1024 * 1024;
/// The name templates see the whole fetched data under.
pub const DATA_VARIABLE: &str = "data";

const B64ENCODE_NOT_TEXT: &str = "b64encode expects a string or bytes";
const B64DECODE_INVALID: &str = "b64decode: input is not valid base64";
const B64DECODE_NOT_UTF8: &str = "b64decode: decoded bytes are not UTF-8 text";
/// Runtime error details written by this file: fixed strings, so safe to show.
const OWN_DETAILS: [&str; 3] = [B64ENCODE_NOT_TEXT, B64DECODE_INVALID, B64DECODE_NOT_UTF8];

/// A template that could not be rendered. The message never contains a fetched or rendered value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// The template's key in `target.template.data`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "template for key {:?}: {}", self.key, self.message)
    }
}

impl std::error::Error for TemplateError {}

/// Renders every key of `template.data` over the fetched values. With `keepSourceKeys` the fetched keys are
/// kept too (a rendered key replaces a fetched key of the same name); otherwise only rendered keys remain.
pub fn render(template: &SecretTemplate, fetched: &SecretData) -> Result<SecretData, TemplateError> {
    let env = environment();
    let context = context_of(fetched);
    let mut out = if template.keep_source_keys { fetched.clone() } else { SecretData::new() };
    for (key, source) in &template.data {
        let value = render_one(&env, key, source, &context)?;
        out.insert(key.clone(), value);
    }
    Ok(out)
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // The default callback turns escaping on for names ending in `.html`, `.xml`...: a key `index.html`
    // must not get its password HTML-escaped.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(FUEL));
    env.set_keep_trailing_newline(true);
    env.add_filter("b64encode", b64encode_filter);
    env.add_filter("b64decode", b64decode_filter);
    env
}

/// `data` holds every fetched value that is text; keys that are identifiers are also plain variables.
/// Binary values are left out, so a template that uses one fails as undefined (and one that does not, works).
fn context_of(fetched: &SecretData) -> Value {
    let text: BTreeMap<String, Value> = fetched
        .iter()
        .filter_map(|(key, value)| std::str::from_utf8(value.expose()).ok().map(|s| (key.clone(), Value::from(s))))
        .collect();
    let mut top: BTreeMap<String, Value> =
        text.iter().filter(|(key, _)| is_identifier(key)).map(|(key, value)| (key.clone(), value.clone())).collect();
    // A fetched key named `data` stays reachable as `data["data"]`.
    top.insert(DATA_VARIABLE.to_owned(), Value::from(text));
    Value::from(top)
}

fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn render_one(env: &Environment<'_>, key: &str, source: &str, context: &Value) -> Result<SecretBytes, TemplateError> {
    if !is_valid_key(key) {
        return Err(error(key, "not a valid Secret key (1-253 characters of [-._a-zA-Z0-9], not \".\" or \"..\")"));
    }
    // Compiling sees only the template text, so its error details are safe to show in full.
    let compiled = env.template_from_named_str(key, source).map_err(|err| error(key, describe(&err, true)))?;
    let mut buffer = Zeroizing::new(Vec::new());
    let mut writer = CappedWriter { buffer: &mut buffer, overflowed: false };
    let result = compiled.render_captured_to(context, &mut writer);
    if writer.overflowed {
        return Err(error(key, format!("rendered value is larger than {MAX_RENDERED_LEN} bytes")));
    }
    result.map_err(|err| error(key, describe(&err, runtime_detail_is_safe(&err, source))))?;
    Ok(SecretBytes::new(std::mem::take(&mut *buffer)))
}

fn error(key: &str, message: impl Into<String>) -> TemplateError {
    TemplateError { key: key.to_owned(), message: message.into() }
}

/// Kind, line and, when `detail_is_safe`, detail of a minijinja error. Never `{}`/`{:#}`/`{:?}` of the
/// error itself: those include the detail and, with debug info, the values of variables.
fn describe(err: &minijinja::Error, detail_is_safe: bool) -> String {
    let detail = err.detail().filter(|_| detail_is_safe);
    let mut message = match (err.kind(), detail) {
        (ErrorKind::OutOfFuel, _) => format!("exceeded its budget of {FUEL} instructions"),
        (kind, Some(detail)) => format!("{kind}: {detail}"),
        (kind, None) => kind.to_string(),
    };
    if let Some(line) = err.line() {
        message.push_str(&format!(" (line {line})"));
    }
    message
}

/// Whether a render error's detail can be shown: one of our fixed messages, or an unknown filter, test or
/// function named in the template text (anyone who can read the error can read the template).
fn runtime_detail_is_safe(err: &minijinja::Error, source: &str) -> bool {
    let Some(detail) = err.detail() else { return false };
    let unknown_name = match err.kind() {
        ErrorKind::UnknownFilter => detail.strip_prefix("filter ").and_then(|rest| rest.strip_suffix(" is unknown")),
        ErrorKind::UnknownTest => detail.strip_prefix("test ").and_then(|rest| rest.strip_suffix(" is unknown")),
        ErrorKind::UnknownFunction => detail.strip_suffix(" is unknown"),
        _ => None,
    };
    OWN_DETAILS.contains(&detail) || unknown_name.is_some_and(|name| is_identifier(name) && contains_word(source, name))
}

/// `word` occurs in `text` with no identifier character right before or after it.
fn contains_word(text: &str, word: &str) -> bool {
    let is_ident_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    text.match_indices(word).any(|(start, _)| {
        let end = start + word.len();
        let clear_before = start == 0 || !is_ident_byte(text.as_bytes()[start - 1]);
        let clear_after = end == text.len() || !is_ident_byte(text.as_bytes()[end]);
        clear_before && clear_after
    })
}

/// Stops a render once its output passes [`MAX_RENDERED_LEN`], instead of building the value first.
struct CappedWriter<'a> {
    buffer: &'a mut Vec<u8>,
    overflowed: bool,
}

impl io::Write for CappedWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.buffer.len() + bytes.len() > MAX_RENDERED_LEN {
            self.overflowed = true;
            return Err(io::Error::other("rendered value too large"));
        }
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn b64encode_filter(value: Value) -> Result<String, minijinja::Error> {
    let bytes = match (value.as_str(), value.as_bytes()) {
        (Some(text), _) => text.as_bytes(),
        (None, Some(bytes)) => bytes,
        (None, None) => return Err(minijinja::Error::new(ErrorKind::InvalidOperation, B64ENCODE_NOT_TEXT)),
    };
    Ok(base64_encode(bytes))
}

fn b64decode_filter(value: String) -> Result<String, minijinja::Error> {
    let bytes = base64_decode(&value).ok_or(minijinja::Error::new(ErrorKind::InvalidOperation, B64DECODE_INVALID))?;
    String::from_utf8(bytes).map_err(|_| minijinja::Error::new(ErrorKind::InvalidOperation, B64DECODE_NOT_UTF8))
}

const BASE64_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648, `+/`, padded). Written here to avoid a dependency for a few lines.
fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let group = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64_ALPHABET[((group >> (18 - 6 * i)) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64, padding optional, ASCII whitespace ignored (wrapped PEM-style input). `None` when the
/// input is not base64.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let symbols: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let unpadded = strip_padding(&symbols)?;
    if unpadded.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(unpadded.len() / 4 * 3 + 2);
    for chunk in unpadded.chunks(4) {
        let mut group = 0u32;
        for (i, symbol) in chunk.iter().enumerate() {
            group |= u32::from(base64_value(*symbol)?) << (18 - 6 * i);
        }
        let group_bytes = group.to_be_bytes();
        out.extend_from_slice(&group_bytes[1..chunk.len()]);
    }
    Some(out)
}

/// The symbols without trailing `=`; `None` when padding is misplaced or makes the length wrong.
fn strip_padding(symbols: &[u8]) -> Option<&[u8]> {
    let data_len = symbols.iter().rposition(|b| *b != b'=').map_or(0, |i| i + 1);
    let padding = symbols.len() - data_len;
    let padded_ok = padding == 0 || (padding <= 2 && symbols.len().is_multiple_of(4));
    padded_ok.then_some(&symbols[..data_len])
}

fn base64_value(symbol: u8) -> Option<u8> {
    match symbol {
        b'A'..=b'Z' => Some(symbol - b'A'),
        b'a'..=b'z' => Some(symbol - b'a' + 26),
        b'0'..=b'9' => Some(symbol - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "Hunter2-T0p-S3cret!";

    fn fetched(entries: &[(&str, &str)]) -> SecretData {
        entries.iter().map(|(k, v)| ((*k).to_owned(), SecretBytes::new(v.as_bytes().to_vec()))).collect()
    }

    fn template(entries: &[(&str, &str)], keep_source_keys: bool) -> SecretTemplate {
        SecretTemplate {
            data: entries.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            keep_source_keys,
        }
    }

    fn render_one_key(source: &str, data: &SecretData) -> Result<String, TemplateError> {
        let out = render(&template(&[("out", source)], false), data)?;
        Ok(String::from_utf8(out["out"].expose().to_vec()).unwrap())
    }

    fn assert_no_secret(err: &TemplateError) {
        for shown in [err.to_string(), format!("{err:?}"), format!("{err:#?}")] {
            assert!(!shown.contains(SECRET), "value leaked: {shown}");
            assert!(!shown.contains("Hunter2"), "value leaked: {shown}");
        }
    }

    #[test]
    fn identifier_keys_are_plain_variables() {
        let data = fetched(&[("username", "app"), ("password", "pw")]);
        let out = render_one_key("postgres://{{ username }}:{{ password }}@db/app", &data).unwrap();
        assert_eq!(out, "postgres://app:pw@db/app");
    }

    #[test]
    fn every_key_is_reachable_through_data() {
        let data = fetched(&[("tls.crt", "CERT"), ("db-password", "pw"), ("user", "u")]);
        let out = render_one_key(r#"{{ data["tls.crt"] }} {{ data["db-password"] }} {{ data.user }}"#, &data);
        assert_eq!(out.unwrap(), "CERT pw u");
    }

    #[test]
    fn non_identifier_keys_are_not_top_level_variables() {
        let data = fetched(&[("1st", "x"), ("a.b", "y")]);
        assert!(render_one_key("{{ a }}", &data).is_err());
        assert_eq!(render_one_key(r#"{{ data["1st"] }}"#, &data).unwrap(), "x");
    }

    #[test]
    fn a_fetched_key_named_data_does_not_hide_the_data_map() {
        let data = fetched(&[("data", "inner"), ("x", "1")]);
        assert_eq!(render_one_key(r#"{{ data["data"] }}-{{ data.x }}"#, &data).unwrap(), "inner-1");
    }

    #[test]
    fn only_rendered_keys_are_kept_by_default() {
        let data = fetched(&[("username", "app"), ("password", "pw")]);
        let out = render(&template(&[("dsn", "{{ username }}")], false), &data).unwrap();
        assert_eq!(out.keys().collect::<Vec<_>>(), ["dsn"]);
    }

    #[test]
    fn keep_source_keys_keeps_fetched_keys_and_rendered_keys_win() {
        let data = fetched(&[("username", "app"), ("password", "pw")]);
        let tmpl = template(&[("dsn", "{{ username }}"), ("password", "{{ password | upper }}")], true);
        let out = render(&tmpl, &data).unwrap();
        assert_eq!(out.keys().collect::<Vec<_>>(), ["dsn", "password", "username"]);
        assert_eq!(out["password"].expose(), b"PW");
        assert_eq!(out["username"].expose(), b"app");
    }

    #[test]
    fn empty_template_renders_an_empty_value() {
        let out = render(&template(&[("empty", "")], false), &SecretData::new()).unwrap();
        assert!(out["empty"].is_empty());
    }

    #[test]
    fn empty_template_map_gives_empty_output_or_the_fetched_data() {
        let data = fetched(&[("a", "1")]);
        assert!(render(&template(&[], false), &data).unwrap().is_empty());
        assert_eq!(render(&template(&[], true), &data).unwrap(), data);
    }

    #[test]
    fn undefined_variable_is_an_error_naming_the_key() {
        let err = render(&template(&[("dsn", "{{ pasword }}")], false), &fetched(&[("password", SECRET)]));
        let err = err.unwrap_err();
        assert_eq!(err.key, "dsn");
        assert!(err.message.contains("undefined"), "{err}");
        assert!(err.to_string().starts_with("template for key \"dsn\": "), "{err}");
        assert_no_secret(&err);
    }

    #[test]
    fn undefined_attribute_of_data_is_an_error() {
        let err = render_one_key("{{ data.missing }}", &fetched(&[("a", "1")])).unwrap_err();
        assert!(err.message.contains("undefined"), "{err}");
    }

    #[test]
    fn is_defined_test_works_in_strict_mode() {
        let out = render_one_key("{% if data.missing is defined %}yes{% else %}no{% endif %}", &fetched(&[]));
        assert_eq!(out.unwrap(), "no");
    }

    #[test]
    fn binary_values_fail_only_when_used() {
        let mut data = fetched(&[("text", "t")]);
        data.insert("bin".into(), SecretBytes::new(vec![0xff, 0xfe, 0x00]));
        assert_eq!(render_one_key("{{ text }}", &data).unwrap(), "t");
        assert!(render_one_key("{{ bin }}", &data).is_err());
        assert!(render_one_key(r#"{{ data["bin"] }}"#, &data).is_err());
    }

    #[test]
    fn binary_values_are_kept_with_keep_source_keys() {
        let mut data = SecretData::new();
        data.insert("bin".into(), SecretBytes::new(vec![0xff, 0x00]));
        let out = render(&template(&[("x", "y")], true), &data).unwrap();
        assert_eq!(out["bin"].expose(), &[0xff, 0x00]);
    }

    #[test]
    fn html_is_not_escaped_even_for_html_like_key_names() {
        let data = fetched(&[("password", "<a&b>\"'/")]);
        for key in ["index.html", "config.xml", "x.htm", "plain"] {
            let out = render(&template(&[(key, "{{ password }}")], false), &data).unwrap();
            assert_eq!(out[key].expose(), b"<a&b>\"'/", "{key}");
        }
    }

    #[test]
    fn trailing_newline_is_kept() {
        assert_eq!(render_one_key("line\n", &fetched(&[])).unwrap(), "line\n");
    }

    #[test]
    fn tojson_and_urlencode_filters_are_available() {
        let data = fetched(&[("password", "p@ss w\"rd")]);
        assert_eq!(render_one_key("{{ password | tojson }}", &data).unwrap(), r#""p@ss w\"rd""#);
        assert_eq!(render_one_key("{{ password | urlencode }}", &data).unwrap(), "p%40ss%20w%22rd");
    }

    #[test]
    fn b64encode_filter_encodes() {
        let data = fetched(&[("user", "admin"), ("password", "pw")]);
        let out = render_one_key(r#"{{ (user ~ ":" ~ password) | b64encode }}"#, &data).unwrap();
        assert_eq!(out, "YWRtaW46cHc=");
    }

    #[test]
    fn b64decode_filter_decodes() {
        let data = fetched(&[("encoded", "aGVsbG8gd29ybGQ=")]);
        assert_eq!(render_one_key("{{ encoded | b64decode }}", &data).unwrap(), "hello world");
    }

    #[test]
    fn b64decode_of_invalid_input_is_an_error_without_the_input() {
        let data = fetched(&[("password", SECRET)]);
        let err = render_one_key("{{ password | b64decode }}", &data).unwrap_err();
        assert!(err.message.contains(B64DECODE_INVALID), "{err}");
        assert_no_secret(&err);
    }

    #[test]
    fn b64decode_of_binary_is_an_error() {
        let data = fetched(&[("encoded", "//79")]);
        let err = render_one_key("{{ encoded | b64decode }}", &data).unwrap_err();
        assert!(err.message.contains(B64DECODE_NOT_UTF8), "{err}");
    }

    #[test]
    fn b64encode_of_a_number_is_an_error() {
        let err = render_one_key("{{ 42 | b64encode }}", &fetched(&[])).unwrap_err();
        assert!(err.message.contains(B64ENCODE_NOT_TEXT), "{err}");
    }

    #[test]
    fn syntax_errors_show_detail_and_line() {
        let err = render_one_key("line one\n{{ password }", &fetched(&[("password", SECRET)])).unwrap_err();
        assert!(err.message.starts_with("syntax error: "), "{err}");
        assert!(err.message.contains("(line 2)"), "{err}");
        assert_no_secret(&err);
    }

    #[test]
    fn runtime_errors_show_the_line() {
        let err = render_one_key("a\nb\n{{ nope }}", &fetched(&[])).unwrap_err();
        assert!(err.message.contains("line 3"), "{err}");
    }

    #[test]
    fn errors_never_contain_a_secret_value() {
        let data = fetched(&[("password", SECRET), ("number", "12345678901234567890")]);
        // Each of these makes minijinja build an error whose detail (or debug output) can quote a value.
        let hostile = [
            "{{ password | int }}",
            "{{ password + 1 }}",
            "{{ password() }}",
            "{{ password.nope() }}",
            "{% include password %}",
            "{% extends password %}",
            "{{ [1] | map(password) | list }}",
            "{{ [1] | select(password) | list }}",
            "{{ data[password] }}",
            "{{ data[password ~ 'x'].y }}",
            "{{ (number | int) * 99999999999999999999 * 99999999999999999999 }}",
            "{{ password | b64decode }}",
            "{% for a, b in password %}{% endfor %}",
            "{{ password | round }}",
            "{{ password | sum }}",
            "{{ password | float }}",
        ];
        for source in hostile {
            let err = render_one_key(source, &data).expect_err(source);
            assert_no_secret(&err);
            assert!(!err.to_string().contains("12345678901234567890"), "{source}: {err}");
        }
    }

    #[test]
    fn invalid_template_keys_are_rejected_naming_the_key() {
        for key in ["has space", "", "..", "a/b"] {
            let err = render(&template(&[(key, "x")], false), &SecretData::new()).unwrap_err();
            assert_eq!(err.key, key);
            assert!(err.message.contains("not a valid Secret key"), "{err}");
        }
    }

    #[test]
    fn endless_loops_run_out_of_fuel() {
        let err = render_one_key(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            &fetched(&[]),
        )
        .unwrap_err();
        assert!(err.message.contains("budget"), "{err}");
    }

    #[test]
    fn include_extends_and_macros_are_not_available() {
        // No loader and no macros feature: a template cannot pull in other templates or recurse.
        for source in ["{% include 'x' %}", "{% extends 'x' %}", "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"] {
            let err = render_one_key(source, &fetched(&[])).unwrap_err();
            assert!(err.message.starts_with("syntax error"), "{source}: {err}");
        }
    }

    #[test]
    fn unknown_filter_test_and_function_named_in_the_template_are_shown() {
        let data = fetched(&[("password", SECRET)]);
        let err = render_one_key("{{ password | frobnicate }}", &data).unwrap_err();
        assert_eq!(err.message, "unknown filter: filter frobnicate is unknown (line 1)");
        let err = render_one_key("{% if password is frobbed %}{% endif %}", &data).unwrap_err();
        assert_eq!(err.message, "unknown test: test frobbed is unknown (line 1)");
        let err = render_one_key("{{ frob(password) }}", &data).unwrap_err();
        assert!(err.message.starts_with("unknown function"), "{err}");
    }

    #[test]
    fn a_filter_name_taken_from_a_value_is_not_shown() {
        let data = fetched(&[("password", SECRET), ("name", "frobnicate")]);
        for source in
            ["{{ [1] | map(password) | list }}", "{{ [1] | map(name) | list }}", "{{ [1] | select(name) | list }}"]
        {
            let err = render_one_key(source, &data).unwrap_err();
            assert!(!err.message.contains("frobnicate"), "{source}: {err}");
            assert_no_secret(&err);
        }
    }

    #[test]
    fn contains_word_matches_whole_identifiers_only() {
        assert!(contains_word("{{ x | frob }}", "frob"));
        assert!(contains_word("frob", "frob"));
        assert!(!contains_word("{{ x | frobnicate }}", "frob"));
        assert!(!contains_word("{{ x | my_frob }}", "frob"));
        assert!(!contains_word("", "frob"));
    }

    #[test]
    fn oversized_output_is_an_error() {
        let err = render_one_key("{{ 'x' * 2000000 }}", &fetched(&[])).unwrap_err();
        assert!(err.message.contains("larger than 1048576 bytes"), "{err}");
        let ok = render_one_key("{{ 'x' * 1048576 }}", &fetched(&[])).unwrap();
        assert_eq!(ok.len(), MAX_RENDERED_LEN);
    }

    #[test]
    fn oversized_output_from_a_loop_is_an_error() {
        let err = render_one_key("{% for i in range(3000) %}{{ 'y' * 1000 }}{% endfor %}", &fetched(&[])).unwrap_err();
        assert!(err.message.contains("larger than"), "{err}");
    }

    #[test]
    fn the_first_failing_key_is_reported() {
        let tmpl = template(&[("a", "ok"), ("b", "{{ missing }}"), ("c", "{{ also_missing }}")], false);
        assert_eq!(render(&tmpl, &SecretData::new()).unwrap_err().key, "b");
    }

    #[test]
    fn template_error_display_names_key_and_message() {
        let err = TemplateError { key: "k".into(), message: "undefined value (line 1)".into() };
        assert_eq!(err.to_string(), r#"template for key "k": undefined value (line 1)"#);
    }

    #[test]
    fn base64_encode_matches_rfc4648_vectors() {
        let vectors =
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")];
        for (plain, encoded) in vectors {
            assert_eq!(base64_encode(plain.as_bytes()), encoded, "{plain}");
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes(), "{encoded}");
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn base64_round_trips_all_byte_values() {
        let bytes: Vec<u8> = (0..=255).chain((0..=255).rev()).collect();
        for len in 0..bytes.len() {
            assert_eq!(base64_decode(&base64_encode(&bytes[..len])).unwrap(), &bytes[..len]);
        }
    }

    #[test]
    fn base64_decode_accepts_missing_padding_and_whitespace() {
        assert_eq!(base64_decode("Zg").unwrap(), b"f");
        assert_eq!(base64_decode("Zm8").unwrap(), b"fo");
        assert_eq!(base64_decode("Zm9v\nYmFy\r\n").unwrap(), b"foobar");
    }

    #[test]
    fn base64_decode_rejects_invalid_input() {
        for bad in ["Z", "Zm9vY", "Zm9v!", "Zg===", "=Zg=", "Z=g=", "Zg=", "-_8=", "Zm9v\u{e9}"] {
            assert!(base64_decode(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn identifiers_are_recognised() {
        for ok in ["a", "_", "_a1", "userName", "A_B"] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in ["", "1a", "a.b", "a-b", "é", "a b"] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }
}
