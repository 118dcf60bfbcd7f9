//! Output shaping shared by the listing commands: Go's `tabwriter` column alignment,
//! `json.Indent` for inspect, and docker's `--format` handling (`table` prefix, `json`,
//! header row, `\t` escapes).

use serde_json::Value;

use crate::template::{Mode, Template, TemplateError};

/// Aligns tab-separated cells like Go's `text/tabwriter` (left-aligned, space padding) as
/// docker's `tabwriter.NewWriter(out, minwidth, 1, padding, ' ', 0)` does: each
/// tab-terminated cell is padded to the widest cell of its column block plus `padding`, and
/// to at least `minwidth`; the last cell of a line is never padded. (The tabwriter crate
/// counts display columns where Go counts characters: the two differ only for wide
/// characters.)
pub fn tabwrite(text: &str, minwidth: usize, padding: usize) -> String {
    use std::io::Write;
    // Go makes a column max(widest + padding, minwidth) wide; the crate makes it
    // max(widest, its minwidth) + padding.
    let mut tw = tabwriter::TabWriter::new(Vec::with_capacity(text.len() * 2))
        .minwidth(minwidth.saturating_sub(padding))
        .padding(padding);
    // Writing to memory cannot fail.
    let _ = tw.write_all(text.as_bytes());
    let _ = tw.flush();
    let out = tw.into_inner().unwrap_or_default();
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Re-indents raw JSON like Go's `json.Indent(dst, src, "", "    ")`, keeping key order and
/// leaving empty objects and arrays as `{}` and `[]`.
pub fn indent_json(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(raw.len() * 2);
    let mut depth = 0usize;
    let mut i = 0;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("    ");
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' => {
                out.push(c);
                i += 1;
                while i < chars.len() {
                    out.push(chars[i]);
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        out.push(chars[i + 1]);
                        i += 2;
                        continue;
                    }
                    if chars[i] == '"' {
                        break;
                    }
                    i += 1;
                }
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                let mut j = i + 1;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                if chars.get(j) == Some(&close) {
                    out.push(c);
                    out.push(close);
                    i = j;
                } else {
                    out.push(c);
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// Removes the whitespace between JSON tokens, keeping key order and string contents.
pub fn compact_json(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// A parsed `--format` value for a listing command.
pub struct RowFormat {
    table: bool,
    template: Template,
}

impl RowFormat {
    /// Parses a user's `--format` (empty means `default_table`, which must start with
    /// `table`); `json` prints each row as JSON.
    pub fn parse(format: &str, default_table: &str) -> Result<Self, TemplateError> {
        let format = match format {
            "" | "table" => default_table,
            "json" => "{{json .}}",
            f => f,
        };
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) => (true, rest),
            None => (false, format),
        };
        let body = body
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        Ok(Self {
            table,
            template: Template::parse(&body)?,
        })
    }

    /// Renders a header row (tables only) and one line per row.
    pub fn render(&self, header: &Value, rows: &[Value]) -> Result<String, TemplateError> {
        let strict = Mode {
            strict: true,
            ..Mode::default()
        };
        let mut body = String::new();
        for row in rows {
            body.push_str(&self.template.render_with(row, strict)?);
            body.push('\n');
        }
        if !self.table {
            return Ok(body);
        }
        let head = self.template.render_with(
            header,
            Mode {
                strict: true,
                header: true,
                ..Mode::default()
            },
        )?;
        Ok(tabwrite(&format!("{head}\n{body}"), 10, 3))
    }
}

/// Docker's `Ellipsis`: cuts `s` to `max` characters, the last being `…`.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Go's `strconv.Quote` for the strings docker quotes (the COMMAND column).
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Docker's short ID: the hex without `sha256:`, cut to 12 characters.
pub fn short_id(id: &str) -> String {
    let hex = id.split_once(':').map_or(id, |(_, h)| h);
    hex.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tabwriter_pads_columns_like_go() {
        let t = "CONTAINER ID\tIMAGE\tNAMES\nabc\tbusybox:latest\tweb\n";
        assert_eq!(
            tabwrite(t, 10, 3),
            "CONTAINER ID   IMAGE            NAMES\nabc            busybox:latest   web\n"
        );
        // Short cells still take the minimum width; the last cell is never padded.
        assert_eq!(tabwrite("a\tb\n", 10, 3), "a         b\n");
        // Lines without tabs break a column block.
        assert_eq!(
            tabwrite("x:\t1\nhead\nlonger:\t2\n", 0, 1),
            "x: 1\nhead\nlonger: 2\n"
        );
        // Width counts characters, not bytes.
        assert_eq!(tabwrite("é…\tx\nab\ty\n", 0, 1), "é… x\nab y\n");
    }

    #[test]
    fn indent_matches_go_json_indent() {
        let raw = br#"{"Id":"x","Args":[],"Env":["A=1","B={"],"Labels":{},"N":{"a":1,"b":[1,2]},"S":"a,b:c"}"#;
        let expected = r#"{
    "Id": "x",
    "Args": [],
    "Env": [
        "A=1",
        "B={"
    ],
    "Labels": {},
    "N": {
        "a": 1,
        "b": [
            1,
            2
        ]
    },
    "S": "a,b:c"
}"#;
        assert_eq!(indent_json(raw), expected);
        assert_eq!(indent_json(br#"["a\"b"]"#), "[\n    \"a\\\"b\"\n]");
        assert_eq!(
            compact_json(indent_json(raw).as_bytes()).as_bytes(),
            &raw[..]
        );
        assert_eq!(
            compact_json(b"{ \"a b\" : [ 1 , \"\\\" x\" ] }"),
            r#"{"a b":[1,"\" x"]}"#
        );
    }

    #[test]
    fn row_format_table_and_plain() {
        let header = json!({"ID":"CONTAINER ID","Names":"NAMES"});
        let rows = vec![
            json!({"ID":"abc","Names":"web"}),
            json!({"ID":"def","Names":"db"}),
        ];
        let f = RowFormat::parse(r"table {{.ID}}\t{{.Names}}", "").unwrap();
        assert_eq!(
            f.render(&header, &rows).unwrap(),
            "CONTAINER ID   NAMES\nabc            web\ndef            db\n"
        );
        let f = RowFormat::parse("{{.Names}}", "").unwrap();
        assert_eq!(f.render(&header, &rows).unwrap(), "web\ndb\n");
        let f = RowFormat::parse("json", "").unwrap();
        assert_eq!(
            f.render(&header, &rows[..1]).unwrap(),
            "{\"ID\":\"abc\",\"Names\":\"web\"}\n"
        );
    }

    #[test]
    fn ellipsis_quote_and_ids() {
        assert_eq!(ellipsis("sleep 9999", 20), "sleep 9999");
        assert_eq!(
            ellipsis("/bin/sh -c 'while true; do'", 20),
            "/bin/sh -c 'while t…"
        );
        assert_eq!(go_quote("echo \"hi\"\n"), "\"echo \\\"hi\\\"\\n\"");
        assert_eq!(short_id("sha256:f87059d7cfa0f2937fe8"), "f87059d7cfa0");
        assert_eq!(short_id("c9283e8a7e0397cab67ac98f"), "c9283e8a7e03");
    }
}
